// Receipt page: print button, and while the payment is pending, wait for Stripe's webhook
// (poll the recharge's status) and reload when it is settled.
(function () {
  "use strict";
  document.querySelectorAll('[data-action="print"]').forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
  var result = document.getElementById("result");
  if (!result || result.dataset.status !== "pending") return;
  var url = "/api/v1/recharges/" + encodeURIComponent(result.dataset.recharge) + "/";
  var started = Date.now();
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (data && data.status && data.status !== "pending") {
          window.location.reload();
        } else if (Date.now() - started < 120000) {
          setTimeout(poll, Date.now() - started < 20000 ? 1000 : 4000);
        }
      })
      .catch(function () { setTimeout(poll, 4000); });
  }
  setTimeout(poll, 800);
})();
