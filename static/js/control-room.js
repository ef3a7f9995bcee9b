// Control room (/creator/live/): while live, refresh the pinned strip and the message queue
// every few seconds from the server (the same HTML, ?part=room). The forms work without it.
// A refresh waits while focus or the pointer is inside the room, so a keyboard user's place
// and a half-made click are never lost.
(function () {
  "use strict";
  var room = document.getElementById("live-room");
  if (!room || !room.dataset.live || !window.fetch) return;
  var EVERY_MS = 4000;
  var hovering = false;
  room.addEventListener("pointerenter", function () { hovering = true; });
  room.addEventListener("pointerleave", function () { hovering = false; });

  function refresh() {
    if (document.hidden || hovering || room.contains(document.activeElement)) return;
    fetch(room.dataset.roomUrl, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (answer) { return answer.ok ? answer.text() : null; })
      .then(function (html) {
        if (html !== null && !hovering && !room.contains(document.activeElement)) {
          room.innerHTML = html;
        }
      })
      .catch(function () { /* offline for a moment: the next refresh tries again */ });
  }
  setInterval(refresh, EVERY_MS);
})();
