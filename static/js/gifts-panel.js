/* Gift panel on a creator's page: sends a gift with the viewer's coins through the JSON API
   (session auth + CSRF), one Idempotency-Key per attempt, reused when a network error makes
   us retry, so a gift is never sent twice. Updates the balance and the leaderboard. */
(function () {
  "use strict";
  var form = document.getElementById("gift-form");
  if (!form) return;
  var button = document.getElementById("gift-send");
  var status = document.getElementById("gift-status");
  var quantityInput = document.getElementById("gift-quantity");
  var messageInput = document.getElementById("gift-message");
  var goalSelect = document.getElementById("gift-goal");
  var split = document.getElementById("gift-split");
  var splitTimer = null;
  var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var pendingKey = null;
  var fmt = new Intl.NumberFormat();

  function uuid4() {
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function selected() { return form.querySelector("input[name=gift]:checked"); }

  function quantity() {
    var q = parseInt(quantityInput.value, 10);
    return isNaN(q) ? 0 : q;
  }

  function updateButton() {
    var gift = selected();
    var q = quantity();
    if (!gift || q < 1 || q > 9999) {
      button.textContent = "Send";
      return;
    }
    var coins = parseInt(gift.dataset.coins, 10) * q;
    button.textContent = "Send " + (q > 1 ? q + " × " : "") + gift.dataset.name + " · " +
      fmt.format(coins) + (coins === 1 ? " coin" : " coins");
  }

  function money(value) {
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency: value.currency }).format(Number(value.amount));
    } catch (err) {
      return value.amount + " " + value.currency;
    }
  }

  // What the creator receives of this gift: the server's quote (gifts/quote.py), never a
  // figure computed here.
  function updateSplit() {
    if (!split) return;
    clearTimeout(splitTimer);
    var gift = selected();
    var q = quantity();
    if (!gift || q < 1 || q > 9999) return;
    splitTimer = setTimeout(function () {
      var url = split.dataset.quoteUrl + "?creator=" + encodeURIComponent(form.dataset.creator) +
        "&gift=" + encodeURIComponent(gift.value) + "&quantity=" + q;
      fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (quote) {
          if (quote && selected() === gift && quantity() === q) {
            split.textContent = "The creator receives ≈ " + money(quote.creator_value) + " of this (" +
              Math.round(quote.rate * 100) + " %).";
          }
        })
        .catch(function () { /* the last figure stays */ });
    }, 150);
  }

  function refreshGoals() {
    var list = document.querySelector("[data-goals-url]");
    if (!list || !window.ApplauseGoals) return;
    fetch(list.dataset.goalsUrl, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) { if (data) data.results.forEach(window.ApplauseGoals.update); })
      .catch(function () { /* the bars update on the next load */ });
  }

  function say(text, isError) {
    status.textContent = text;
    status.className = "small " + (isError ? "text-danger" : "text-success");
  }

  function setBalance(coins) {
    document.querySelectorAll("[data-balance]").forEach(function (el) { el.textContent = fmt.format(coins); });
    var pill = document.querySelector(".coin-pill");
    if (pill) {
      pill.innerHTML = '<span class="visually-hidden">Balance: </span>' + fmt.format(coins) +
        '<span class="visually-hidden"> coins</span>';
    }
  }

  function bumpLeaderboard(coins) {
    // The leaderboard API is cached for a few seconds: show our own gift at once.
    var list = document.getElementById("leaderboard");
    var me = list && list.dataset.me;
    if (!me) return;
    var row = Array.prototype.find.call(list.children, function (li) { return li.dataset.username === me; });
    if (!row) {
      row = document.createElement("li");
      row.className = "is-me";
      row.dataset.username = me;
      row.dataset.coins = "0";
      var avatar = document.createElement("span");
      avatar.className = "avatar avatar--sm";
      avatar.setAttribute("aria-hidden", "true");
      avatar.textContent = me.slice(0, 2).toUpperCase();
      var name = document.createElement("span");
      name.className = "leaderboard-name";
      name.textContent = me;
      var amount = document.createElement("span");
      amount.className = "leaderboard-coins";
      row.append(avatar, name, amount);
      list.appendChild(row);
    }
    var total = parseInt(row.dataset.coins, 10) + coins;
    row.dataset.coins = String(total);
    row.querySelector(".leaderboard-coins").innerHTML = fmt.format(total) + '<span class="visually-hidden"> coins</span>';
    var rows = Array.prototype.slice.call(list.children).sort(function (a, b) {
      return parseInt(b.dataset.coins, 10) - parseInt(a.dataset.coins, 10);
    });
    rows.forEach(function (li) { list.appendChild(li); });
    list.hidden = false;
    var empty = document.getElementById("leaderboard-empty");
    if (empty) empty.hidden = true;
  }

  form.addEventListener("change", function () { pendingKey = null; updateButton(); updateSplit(); });
  quantityInput.addEventListener("input", function () { pendingKey = null; updateButton(); updateSplit(); });
  messageInput.addEventListener("input", function () { pendingKey = null; });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var gift = selected();
    var q = quantity();
    if (!gift) { say("Pick a gift first.", true); return; }
    if (q < 1 || q > 9999) {
      quantityInput.setAttribute("aria-invalid", "true");
      say("Quantity must be between 1 and 9,999.", true);
      quantityInput.focus();
      return;
    }
    quantityInput.removeAttribute("aria-invalid");
    var body = { creator: form.dataset.creator, gift: gift.value, quantity: q };
    if (messageInput.value.trim()) body.message = messageInput.value.trim();
    // While the creator is live, the gift goes to that live (and so to the overlay).
    if (form.dataset.liveId) body.live_id = form.dataset.liveId;
    if (goalSelect && goalSelect.value) body.goal = parseInt(goalSelect.value, 10);
    pendingKey = pendingKey || uuid4();
    button.disabled = true;
    button.classList.add("is-loading");
    form.setAttribute("aria-busy", "true");
    say("Sending…", false);
    fetch(form.dataset.endpoint, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-CSRFToken": csrf,
        "Idempotency-Key": pendingKey
      },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { status: response.status, data: data };
      });
    }).then(function (result) {
      if (result.status === 201) {
        pendingKey = null;
        setBalance(result.data.wallet.coins);
        bumpLeaderboard(result.data.coins_spent);
        messageInput.value = "";
        var sent = "Sent " + (q > 1 ? q + " × " : "") + gift.dataset.name + " to @" + form.dataset.creator + "!";
        if (result.data.creator_value) {
          sent += " The creator receives ≈ " + money(result.data.creator_value) + " of this.";
        }
        say(sent, false);
        if (result.data.goal) refreshGoals();
      } else if (result.status >= 500) {
        say("Something went wrong on our side. Try again: you will not be charged twice.", true);
      } else {
        pendingKey = null;
        var error = result.data.error || {};
        var text = error.message || "That did not work.";
        if (error.code === "insufficient_funds") text = "Not enough coins for this gift. Get more on the Recharge page.";
        if (error.code === "goal_closed") text = "That goal has closed: pick another, or send without a goal.";
        say(text, true);
      }
    }).catch(function () {
      say("Network problem. Try again: you will not be charged twice.", true);
    }).finally(function () {
      button.disabled = false;
      button.classList.remove("is-loading");
      form.removeAttribute("aria-busy");
    });
  });

  updateButton();
  updateSplit();
})();
