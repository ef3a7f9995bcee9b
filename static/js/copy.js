// Copy buttons: <button data-copy-target="ID"> copies the value of the input ID.
(function () {
  "use strict";
  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    button.addEventListener("click", function () {
      var input = document.getElementById(button.dataset.copyTarget);
      var status = document.querySelector("[data-copy-status]");
      if (!input) return;
      function done(ok) {
        if (status) status.textContent = ok ? "Copied." : "Select the URL and copy it.";
      }
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(function () { done(true); }, function () { done(false); });
      } else {
        input.select();
        try { done(document.execCommand("copy")); } catch (e) { done(false); }
      }
    });
  });
})();
