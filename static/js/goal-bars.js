/* Goal progress bars (issue #19): the creator page and the stream overlay share them.
   ApplauseGoals.update(goal) draws or refreshes one goal (the shape of GET
   /api/v1/creators/{handle}/goals/ and of the live feed's `goal` events) in every
   [data-goal-bars] list on the page. */
(function () {
  "use strict";
  var fmt = new Intl.NumberFormat();

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function statusText(goal) {
    if (goal.status === "met") return "Goal met!";
    if (goal.status === "missed") {
      return goal.all_or_nothing ? "Missed: every gift goes back to its sender" : "Missed";
    }
    var ends = new Date(goal.deadline);
    return "Ends " + ends.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  }

  function build(goal) {
    var item = el("li", "goal");
    item.dataset.goalId = String(goal.id);
    var head = el("div", "goal-head");
    var title = el("span", "goal-title");
    head.appendChild(title);
    if (goal.all_or_nothing) {
      var badge = el("span", "badge badge--info goal-aon", "All or nothing");
      badge.title = "Gifts are held until the deadline: met, the creator gets all of it; " +
        "missed, every gift goes back to its sender.";
      head.appendChild(badge);
    }
    var bar = el("progress", "goal-bar");
    var figures = el("p", "goal-figures small");
    item.append(head, bar, figures);
    return item;
  }

  function fill(item, goal) {
    var title = "goal-" + goal.id + "-title";
    item.querySelector(".goal-title").textContent = goal.title;
    item.querySelector(".goal-title").id = title;
    var bar = item.querySelector(".goal-bar");
    bar.max = goal.target_coins;
    bar.value = Math.min(goal.raised_coins, goal.target_coins);
    bar.setAttribute("aria-labelledby", title);
    item.querySelector(".goal-figures").textContent =
      fmt.format(goal.raised_coins) + " / " + fmt.format(goal.target_coins) + " coins · " +
      statusText(goal);
    item.dataset.status = goal.status;
  }

  function update(goal) {
    document.querySelectorAll("[data-goal-bars]").forEach(function (list) {
      var item = list.querySelector('[data-goal-id="' + goal.id + '"]');
      if (!item) {
        item = build(goal);
        list.appendChild(item);
      }
      fill(item, goal);
      list.hidden = false;
    });
  }

  window.ApplauseGoals = { update: update };
})();
