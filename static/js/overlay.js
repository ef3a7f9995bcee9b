// Stream overlay: listens to the live gift feed (Server-Sent Events) and shows one card per
// combo. The server counts combos (same sender and gift within a few seconds); a card only
// shows the newest count it was sent, so a reconnect never double counts.
(function () {
  "use strict";
  var root = document.getElementById("overlay");
  var feed = document.getElementById("overlay-feed");
  if (!root || !feed || !window.EventSource) return;
  var MAX_CARDS = 6;
  var LINGER_MS = 2500; // how long a card stays after its combo window closes
  var cards = new Map(); // combo_id -> {el, timer}

  function text(tag, className, value) {
    var el = document.createElement(tag);
    el.className = className;
    el.textContent = value;
    return el;
  }

  function scheduleRemoval(card, data) {
    clearTimeout(card.timer);
    var expires = Date.parse(data.combo_expires_at) - Date.parse(data.at);
    var wait = Math.max(1000, isFinite(expires) ? expires : 5000) + LINGER_MS;
    card.timer = setTimeout(function () {
      card.el.classList.add("is-leaving");
      setTimeout(function () { card.el.remove(); }, 450);
      cards.delete(card.id);
    }, wait);
  }

  function render(data) {
    var card = cards.get(data.combo_id);
    if (!card) {
      var el = document.createElement("li");
      el.className = "gift-card" + (data.big ? " gift-card--big" : "");
      el.dataset.comboId = String(data.combo_id);
      el.dataset.gift = data.gift.slug;
      var img = document.createElement("img");
      img.src = data.gift.image_url;
      img.alt = "";
      var body = document.createElement("span");
      var who = text("span", "gift-who", data.sender);
      (data.badges || []).forEach(function (badge) {
        var mark = text("span", "gift-badge gift-badge--" + badge.kind, badge.label);
        mark.dataset.badge = badge.kind;
        who.appendChild(document.createTextNode(" "));
        who.appendChild(mark);
      });
      body.appendChild(who);
      body.appendChild(text("span", "gift-what", "sent " + data.gift.name));
      if (data.message) {
        var said = text("span", "gift-who gift-message", data.message);
        said.dataset.messageId = String(data.id);
        body.appendChild(said);
      }
      var count = text("span", "gift-count", "");
      el.appendChild(img);
      el.appendChild(body);
      el.appendChild(count);
      feed.insertBefore(el, feed.firstChild);
      card = { id: data.combo_id, el: el, timer: null, count: 0 };
      cards.set(data.combo_id, card);
      while (feed.children.length > MAX_CARDS) {
        var last = feed.lastElementChild;
        cards.delete(Number(last.dataset.comboId));
        last.remove();
      }
    }
    if (data.count < card.count) return; // an older update arriving late
    card.count = data.count;
    card.el.dataset.count = String(data.count);
    card.el.querySelector(".gift-count").textContent = "\u00d7" + data.count;
    card.el.classList.remove("is-bumped");
    void card.el.offsetWidth; // restart the bump animation
    card.el.classList.add("is-bumped");
    scheduleRemoval(card, data);
  }

  // Pinned (highlighted) messages: the server says when one starts (`pinned`) and ends
  // (`unpinned`: its time is up, the creator dismissed it, or it was hidden). A reconnect
  // starts with a `pinned` per message pinned now, so the strip is rebuilt, never doubled.
  var pinStrip = document.getElementById("overlay-pins");
  var pins = new Map(); // gift event id -> {el, timer}

  function unpin(id) {
    var pin = pins.get(id);
    if (!pin) return;
    clearTimeout(pin.timer);
    pins.delete(id);
    pin.el.classList.add("is-leaving");
    setTimeout(function () { pin.el.remove(); }, 450);
  }

  function pin(data) {
    if (!pinStrip || pins.has(data.id)) return;
    var el = document.createElement("li");
    el.className = "pin pin--tier" + data.tier;
    el.dataset.pin = String(data.id);
    el.style.setProperty("--tier-colour", data.colour);
    var head = text("span", "pin-who", data.username);
    head.appendChild(text("span", "pin-coins", " · " + Number(data.coins).toLocaleString() + " coins"));
    el.appendChild(head);
    el.appendChild(text("span", "pin-message", data.message));
    var left = Date.parse(data.until) - Date.now();
    var bar = document.createElement("span");
    bar.className = "pin-time";
    if (isFinite(left) && left > 0) bar.style.animationDuration = left + "ms";
    el.appendChild(bar);
    pinStrip.appendChild(el);
    // The server's `unpinned` ends it; this only guards against a lost stream.
    var timer = setTimeout(function () { unpin(data.id); }, Math.max(left, 0) + 5000);
    pins.set(data.id, { el: el, timer: timer });
  }

  function hideMessage(id) {
    unpin(id);
    feed.querySelectorAll('[data-message-id="' + String(id) + '"]').forEach(function (el) {
      el.remove();
    });
  }

  function listen(source, kind, handle) {
    source.addEventListener(kind, function (message) {
      try {
        handle(JSON.parse(message.data));
      } catch (err) {
        // A malformed frame must not stop the overlay.
      }
    });
  }

  // EventSource reconnects by itself after a dropped stream, but gives up for good on an
  // HTTP error (503 live_streams_busy when the server holds as many streams as it allows):
  // then open a new one after a pause, resuming after the last gift shown.
  var lastEventId = "";
  function connect() {
    var url = root.dataset.eventsUrl;
    if (lastEventId) {
      url += (url.indexOf("?") === -1 ? "?" : "&") + "last_event_id=" + encodeURIComponent(lastEventId);
    }
    var source = new EventSource(url);
    source.addEventListener("hello", function (message) {
      if (message.lastEventId) lastEventId = message.lastEventId;
      root.dataset.state = "live";
    });
    source.addEventListener("gift", function (message) {
      if (message.lastEventId) lastEventId = message.lastEventId;
      try {
        render(JSON.parse(message.data));
      } catch (err) {
        // A malformed frame must not stop the overlay.
      }
    });
    listen(source, "pinned", pin);
    listen(source, "unpinned", function (data) { unpin(data.id); });
    listen(source, "message_hidden", function (data) { hideMessage(data.id); });
    listen(source, "goal", function (data) {
      if (window.ApplauseGoals) window.ApplauseGoals.update(data);
    });
    source.addEventListener("error", function () {
      root.dataset.state = "reconnecting";
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(connect, 5000 + Math.random() * 10000);
      }
    });
  }
  connect();
})();
