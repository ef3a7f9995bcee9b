// The recharge page. Card flow (works with real Stripe.js and localstripe's stand-in):
//   1. Stripe.js turns the card into a PaymentMethod (createPaymentMethod); stand-ins without
//      it (localstripe) give a card token instead, whose card id Stripe accepts the same way.
//   2. We POST the choice + that id to /recharge/intent/ (session + CSRF + Idempotency-Key);
//      the server creates the PaymentIntent and confirms it at once.
//   3. If the bank wants 3-D Secure, stripe.confirmCardPayment(client_secret) runs it.
//   4. We go to the receipt page, which waits for Stripe's webhook to credit the coins.
// The card number never reaches our server. Apple Pay / Google Pay appear through Stripe's
// payment request button when the browser offers them (feature-detected).
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("recharge-config").textContent);
  var form = document.getElementById("recharge-form");
  var payButton = document.getElementById("pay-button");
  var statusLine = document.getElementById("pay-status");
  var cardErrors = document.getElementById("card-errors");
  var customInput = document.getElementById("custom-coins");
  var customPrice = document.getElementById("custom-price");
  var customError = document.getElementById("custom-error");
  var busy = false;
  var stripe = null;
  var card = null;
  var paymentRequest = null;

  function currency() {
    var checked = document.querySelector('input[name="currency"]:checked');
    return checked ? checked.value : config.currency;
  }

  function formatMoney(amount, cur) {
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency: cur }).format(amount);
    } catch (e) {
      return (config.symbols[cur] || "") + amount.toFixed(2);
    }
  }

  // What is being bought: {body: {...}, coins, priceText, amountMinor} or null.
  function selection() {
    var cur = currency();
    var raw = customInput.value.trim();
    if (raw !== "") {
      var coins = Number(raw);
      if (!Number.isInteger(coins) || coins < config.customMin || coins > config.customMax) {
        return { error: "Enter a whole number of coins from " + config.customMin.toLocaleString() +
                        " to " + config.customMax.toLocaleString() + "." };
      }
      var amount = Math.round(coins * Number(config.unitPrices[cur]) * 100) / 100;
      return { body: { coins: coins, currency: cur }, coins: coins, detail: "Custom amount · charged in " + cur,
               priceText: formatMoney(amount, cur), amountMinor: Math.round(amount * 100) };
    }
    var picked = document.querySelector('input[name="package"]:checked');
    if (!picked) return null;
    var prices = JSON.parse(picked.dataset.prices || "{}");
    if (!prices[cur]) return { error: "This package is not sold in " + cur + "." };
    var coinsTotal = Number(picked.dataset.coins) + Number(picked.dataset.bonus);
    var bonus = Number(picked.dataset.bonus);
    return {
      body: { package: Number(picked.value), currency: cur },
      coins: coinsTotal,
      detail: Number(picked.dataset.coins).toLocaleString() + " coins" +
              (bonus ? " + " + bonus.toLocaleString() + " bonus" : "") + " · charged in " + cur,
      priceText: prices[cur],
      amountMinor: Math.round(Number(prices[cur].replace(/[^0-9.]/g, "")) * 100),
    };
  }

  function render() {
    var cur = currency();
    document.querySelectorAll('input[name="package"]').forEach(function (input) {
      var prices = JSON.parse(input.dataset.prices || "{}");
      var label = document.querySelector('label[for="' + input.id + '"]');
      var price = label && label.querySelector('[data-role="price"]');
      if (price) price.textContent = prices[cur] || "—";
      if (label) label.classList.toggle("package-card--best", String(config.bestByCurrency[cur]) === input.value);
    });
    document.getElementById("unit-price").textContent = (config.symbols[cur] || "") + config.unitPrices[cur];
    var sel = selection();
    customError.hidden = true;
    if (sel && sel.error) {
      if (customInput.value.trim() !== "") { customError.textContent = sel.error; customError.hidden = false; }
      customInput.setAttribute("aria-invalid", customInput.value.trim() !== "" ? "true" : "false");
      customPrice.textContent = "";
      document.getElementById("pay-coins").textContent = "—";
      document.getElementById("pay-total").textContent = "—";
      payButton.textContent = "Pay";
      return;
    }
    customInput.setAttribute("aria-invalid", "false");
    customPrice.textContent = customInput.value.trim() !== "" && sel ? sel.priceText : "";
    if (!sel) return;
    document.getElementById("pay-coins").textContent = sel.coins.toLocaleString();
    document.getElementById("pay-detail").textContent = sel.detail;
    document.getElementById("pay-total").textContent = sel.priceText;
    if (!busy) payButton.textContent = "Pay " + sel.priceText;
    updatePaymentRequest(sel);
  }

  function setBusy(on, text) {
    busy = on;
    payButton.disabled = on;
    payButton.classList.toggle("is-loading", on);
    payButton.setAttribute("aria-busy", on ? "true" : "false");
    var sel = selection();
    payButton.textContent = on ? "Paying " + (sel && sel.priceText ? sel.priceText : "") + "…"
                               : "Pay " + (sel && sel.priceText ? sel.priceText : "");
    statusLine.textContent = text || "";
  }

  function showError(message) {
    cardErrors.textContent = message || "Something went wrong. Please try again.";
    statusLine.textContent = "";
  }

  function newKey() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return "k-" + Date.now() + "-" + Math.random().toString(36).slice(2);
  }

  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // Offline (localstripe): our own card fields, accepting the number as the page prints it
  // ("4242 4242 4242 4242"), turned into a card by the stand-in's token endpoint.
  function offlineCardBody() {
    var number = document.getElementById("card-number").value.replace(/[\s-]/g, "");
    var expiry = document.getElementById("card-expiry").value.replace(/\s/g, "").split("/");
    var cvc = document.getElementById("card-cvc").value.trim();
    if (!/^\d{12,19}$/.test(number)) throw { message: "Enter the card number (12 to 19 digits)." };
    var month = parseInt(expiry[0], 10), year = parseInt(expiry[1] || "", 10);
    if (!(month >= 1 && month <= 12) || isNaN(year)) throw { message: "Enter the expiry as MM / YY." };
    if (year < 100) year += 2000;
    if (!/^\d{3,4}$/.test(cvc)) throw { message: "Enter the 3 or 4 digit CVC." };
    return "card[number]=" + number + "&card[exp_month]=" + month + "&card[exp_year]=" + year +
      "&card[cvc]=" + cvc + "&key=" + encodeURIComponent(config.publishableKey);
  }

  async function offlinePaymentMethodId() {
    var response = await fetch(config.offlineApiBase + "/v1/tokens", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: offlineCardBody()
    });
    var token = await response.json().catch(function () { return {}; });
    if (response.ok && token.card && token.card.id) return token.card.id;
    throw (token && token.error) || { message: "Check your card details." };
  }

  async function paymentMethodId() {
    if (config.offlineCard) return offlinePaymentMethodId();
    if (typeof stripe.createPaymentMethod === "function") {
      var result = await stripe.createPaymentMethod({ type: "card", card: card });
      if (result && result.paymentMethod) return result.paymentMethod.id;
      if (result && result.error) throw result.error;
    }
    // localstripe's Stripe.js stand-in has no createPaymentMethod: use a card token's card.
    var tokenResult = await stripe.createToken(card);
    if (tokenResult && tokenResult.token && tokenResult.token.card) return tokenResult.token.card.id;
    throw (tokenResult && tokenResult.error) || { message: "Check your card details." };
  }

  function setUpOfflineCard() {
    var number = document.getElementById("card-number");
    var expiry = document.getElementById("card-expiry");
    number.addEventListener("input", function () {
      var digits = number.value.replace(/\D/g, "").slice(0, 19);
      number.value = digits.replace(/(\d{4})(?=\d)/g, "$1 ");
      cardErrors.textContent = "";
    });
    expiry.addEventListener("input", function () {
      var digits = expiry.value.replace(/\D/g, "").slice(0, 4);
      expiry.value = digits.length > 2 ? digits.slice(0, 2) + " / " + digits.slice(2) : digits;
    });
  }

  // Cooling-off: above the threshold, ask "are you sure?" (a <dialog>) before paying.
  // Resolves true when the buyer confirms (or no confirmation is needed).
  function confirmLarge(sel) {
    var dialog = document.getElementById("confirm-dialog");
    if (config.confirmAbove === null || sel.coins <= config.confirmAbove) return Promise.resolve(false);
    if (!dialog || typeof dialog.showModal !== "function") {
      return Promise.resolve(window.confirm("Buy " + sel.coins.toLocaleString() + " coins for " + sel.priceText + "?") ? true : null);
    }
    document.getElementById("confirm-text").textContent =
      "You are about to buy " + sel.coins.toLocaleString() + " coins for " + sel.priceText + ".";
    return new Promise(function (resolve) {
      dialog.addEventListener("close", function onClose() {
        dialog.removeEventListener("close", onClose);
        resolve(dialog.returnValue === "confirm" ? true : null);
      });
      dialog.returnValue = "";
      dialog.showModal();
    });
  }

  // Create + confirm on the server; returns true when the flow moved on to the receipt.
  async function pay(sel, pmId) {
    var confirmed = await confirmLarge(sel);
    if (confirmed === null) {
      setBusy(false, "Purchase cancelled. Nothing was charged.");
      return false;
    }
    setBusy(true, "Contacting your bank…");
    var response = await fetch(config.intentUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json",
                 "X-CSRFToken": csrfToken(), "Idempotency-Key": newKey() },
      body: JSON.stringify(Object.assign({}, sel.body, { payment_method: pmId },
                                         confirmed ? { confirm: true } : {})),
    });
    var data = await response.json().catch(function () { return {}; });
    if (!response.ok) {
      showError(data.error && data.error.message);
      setBusy(false);
      return false;
    }
    if (data.status === "failed") {
      showError(data.failure_message || "Your card was declined.");
      setBusy(false);
      return false;
    }
    if (data.requires_action) {
      statusLine.textContent = "Your bank asks you to confirm this payment…";
      var confirmed = await stripe.confirmCardPayment(data.client_secret);
      if (confirmed && confirmed.error) {
        showError(confirmed.error.message || "The payment was not confirmed.");
        setBusy(false);
        return false;
      }
    }
    statusLine.textContent = "Payment sent. Waiting for confirmation…";
    window.location.assign("/recharges/" + data.id + "/receipt/");
    return true;
  }

  async function onSubmit(event) {
    event.preventDefault();
    if (busy) return;
    cardErrors.textContent = "";
    var sel = selection();
    if (!sel || sel.error) { showError((sel && sel.error) || "Choose a package or a custom amount."); return; }
    if (!stripe || (!card && !config.offlineCard)) { showError("Card payments are unavailable right now. Please try again later."); return; }
    setBusy(true, "Checking your card…");
    try {
      var pmId = await paymentMethodId();
      await pay(sel, pmId);
    } catch (err) {
      showError((err && err.message && err.message !== "Bad request") ? err.message : "Check your card details and try again.");
      setBusy(false);
    }
  }

  function updatePaymentRequest(sel) {
    if (!paymentRequest || !sel || !sel.amountMinor) return;
    try {
      paymentRequest.update({ currency: currency().toLowerCase(),
                              total: { label: sel.coins + " Applause coins", amount: sel.amountMinor } });
    } catch (e) { /* ignore: the card form is always there */ }
  }

  function setUpPaymentRequest() {
    if (typeof stripe.paymentRequest !== "function") return;
    var sel = selection();
    if (!sel || sel.error) return;
    try {
      paymentRequest = stripe.paymentRequest({
        country: "US", currency: currency().toLowerCase(),
        total: { label: sel.coins + " Applause coins", amount: sel.amountMinor },
      });
      paymentRequest.canMakePayment().then(function (can) {
        if (!can) return;
        var button = stripe.elements().create("paymentRequestButton", { paymentRequest: paymentRequest });
        button.mount("#payment-request-button");
        var divider = document.createElement("p");
        divider.className = "divider";
        divider.textContent = "or pay with card";
        document.getElementById("payment-request-button").after(divider);
      }).catch(function () {});
      paymentRequest.on("paymentmethod", async function (ev) {
        var current = selection();
        var ok = false;
        try { ok = await pay(current, ev.paymentMethod.id); } catch (e) { ok = false; }
        ev.complete(ok ? "success" : "fail");
      });
    } catch (e) {
      paymentRequest = null;
    }
  }

  document.querySelectorAll('input[name="currency"]').forEach(function (input) {
    input.addEventListener("change", function () {
      var url = new URL(window.location.href);
      url.searchParams.set("currency", currency());
      window.history.replaceState(null, "", url);
      render();
    });
  });
  document.querySelectorAll('input[name="package"]').forEach(function (input) {
    input.addEventListener("change", function () { customInput.value = ""; render(); });
  });
  customInput.addEventListener("input", function () {
    if (customInput.value.trim() !== "") {
      document.querySelectorAll('input[name="package"]').forEach(function (i) { i.checked = false; });
    }
    render();
  });
  form.addEventListener("submit", onSubmit);

  if (typeof window.Stripe === "function") {
    try {
      stripe = window.Stripe(config.publishableKey);
      if (config.offlineCard) {
        setUpOfflineCard();
      } else {
        card = stripe.elements().create("card", { hidePostalCode: true });
        card.mount("#card-element");
      }
      if (card && typeof card.on === "function") {
        card.on("change", function (ev) {
          cardErrors.textContent = ev && ev.error ? ev.error.message : "";
        });
      }
      setUpPaymentRequest();
    } catch (e) {
      stripe = null;
    }
  }
  if (!stripe) {
    showError("Card payments could not be loaded. Check your connection and reload the page.");
    payButton.disabled = true;
  }
  render();
})();
