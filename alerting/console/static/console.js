// llmcost console: the only script the page runs (no framework, no external resource).
// It relabels times in the viewer's time zone, expands "*" budgets, keeps the admin token for this
// tab only (sessionStorage), loads the alerts with it and sends Acknowledge / Unacknowledge to the API.
// Where /metrics is guarded (auth.metrics_tokens) the server leaves spend, budgets and spikes out of a
// page asked for without a token; with one entered, the script asks for the page again with it and
// puts those sections in.
"use strict";
(function () {
  var TOKEN = "llmcost.token";
  var ACTOR = "llmcost.actor";
  var body = document.body;
  var needsToken = body.dataset.needsToken === "yes";
  var figuresGuarded = body.dataset.figures === "hidden";
  var FIGURES = ["now", "spend", "budgets", "spikes"];
  // The sections as served without a token, put back by "Forget".
  var locked = {};
  if (figuresGuarded) {
    FIGURES.forEach(function (id) {
      var el = document.getElementById(id);
      if (el) locked[id] = el.cloneNode(true);
    });
  }

  function relabel(root) {
    var hour = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
    var day = { month: "short", day: "numeric" };
    var full = { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
    root.querySelectorAll("[data-t]").forEach(function (el) {
      var when = new Date(Number(el.dataset.t) * 1000);
      var fmt = Object.assign({}, el.dataset.fmt === "hour" ? hour : el.dataset.fmt === "day" ? day : full);
      // A chart's day is the day in the zone it was cut in (its caption names it), not the viewer's:
      // midnight in Los Angeles is still the day before in Honolulu.
      if (el.dataset.zone) fmt.timeZone = el.dataset.zone;
      var text;
      try { text = when.toLocaleString(undefined, fmt); } catch (e) { return; } // a zone this browser lacks: the server's label stays
      // A bar's hover text: its words (data-prefix), then its time.
      el.textContent = (el.dataset.prefix || "") + text;
      if (el.tagName.toLowerCase() === "time") el.setAttribute("datetime", when.toISOString());
    });
  }

  function rememberZone() {
    // The server aligns the 30-day chart's days to this zone from the next page load on.
    try {
      var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      if (zone) document.cookie = "llmcost_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; SameSite=Strict";
    } catch (e) { /* an old browser: the server's zone stays */ }
  }

  function status(text, isError) {
    var el = document.getElementById("alert-status");
    if (!el) return;
    el.textContent = text;
    el.className = isError ? "status error" : "status";
  }

  function headers(json) {
    var h = {};
    var token = sessionStorage.getItem(TOKEN);
    if (token) h.Authorization = "Bearer " + token;
    if (json) h["Content-Type"] = "application/json";
    return h;
  }

  function wireExpand(root) {
    root.querySelectorAll("button.expand").forEach(function (b) {
      b.addEventListener("click", function () {
        var group = b.closest("tbody");
        var open = group.classList.toggle("open");
        b.setAttribute("aria-expanded", open ? "true" : "false");
      });
    });
  }

  function showSections(from) {
    // `from` is a document: this page as the server rendered it (escaped), parsed, never run.
    FIGURES.forEach(function (id) {
      var here = document.getElementById(id);
      var there = from.getElementById(id);
      if (!here || !there) return;
      var fresh = document.importNode(there, true);
      here.replaceWith(fresh);
      relabel(fresh);
      wireExpand(fresh);
    });
  }

  function loadFigures() {
    // Resolves true when the token showed the figures; the page's own URL, so ?by= and ?budget= hold.
    var url = location.pathname + location.search;
    return fetch(url, { headers: headers(false), credentials: "omit", cache: "no-store" })
      .then(function (r) {
        if (!r.ok && r.status !== 404) throw new Error("HTTP " + r.status); // 404: no such budget, said on the page
        return r.text();
      })
      .then(function (html) {
        var answer = new DOMParser().parseFromString(html, "text/html");
        if (answer.body.dataset.figures === "hidden") {
          sessionStorage.removeItem(TOKEN);
          status("The token was refused; enter a metrics or admin token again.", true);
          return false;
        }
        showSections(answer);
        body.dataset.figures = "shown";
        return true;
      })
      .catch(function (e) {
        status("Could not load the figures: " + e.message, true);
        return false;
      });
  }

  function loadWithToken() {
    // The figures first: a token they refuse is dropped, and the alerts are not asked for with it.
    if (!figuresGuarded) return loadAlerts();
    return loadFigures().then(function (shown) {
      if (shown) return loadAlerts();
    });
  }

  function loadAlerts() {
    return fetch("/console/alerts", { headers: headers(false), credentials: "omit", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401 && figuresGuarded && body.dataset.figures === "shown") {
          // A metrics token: it shows the figures, so it is kept; alerts need an admin token.
          status("This token shows spend, budgets and spikes; the alerts need an admin token.");
          return null;
        }
        if (r.status === 401) {
          sessionStorage.removeItem(TOKEN);
          status("The admin token was refused; enter it again.", true);
          return null;
        }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        if (html === null) return;
        var target = document.getElementById("alerts-body");
        target.innerHTML = html; // server-rendered and escaped, from this origin
        relabel(target);
        target.dataset.loaded = "yes";
      })
      .catch(function (e) { status("Could not load the alerts: " + e.message, true); });
  }

  function act(button) {
    var id = button.dataset.id;
    var action = button.dataset.action;
    var actor = sessionStorage.getItem(ACTOR) || "console";
    var hadFocus = document.activeElement === button; // read before disabling, which drops the focus
    button.disabled = true;
    fetch("/v1/alerts/" + encodeURIComponent(id) + "/" + action, {
      method: "POST",
      headers: headers(true),
      credentials: "omit",
      body: JSON.stringify({ by: actor, comment: "from the llmcost console" }),
    })
      .then(function (r) {
        return r.text().then(function (text) {
          var data = null;
          try { data = JSON.parse(text); } catch (e) { /* not llmcost's JSON: a proxy's error page, say */ }
          return { ok: r.ok && data !== null, status: r.status, data: data || {} };
        });
      })
      .then(function (res) {
        if (!res.ok) {
          status("Alert " + id + ": " + (res.data.error || "HTTP " + res.status), true);
          button.disabled = false;
          if (hadFocus) button.focus();
          return;
        }
        if (res.data.changed === false) {
          // Someone else acted first (another tab, Slack, PagerDuty, the CLI): say so, not that we did.
          status(action === "ack" && res.data.acknowledged_by
            ? "Alert " + id + " was already acknowledged by " + res.data.acknowledged_by + "."
            : "Alert " + id + " was already " + res.data.state + ".");
        } else {
          status("Alert " + id + " " + (action === "ack" ? "acknowledged" : "unacknowledged") + " by " + actor + ".");
        }
        return loadAlerts().then(function () {
          // The section was re-rendered: keep a keyboard user on this alert's new button.
          if (!hadFocus) return;
          var next = document.querySelector('#alerts-body button[data-id="' + id + '"]');
          if (next) next.focus();
        });
      })
      .catch(function (e) {
        status("Alert " + id + ": " + e.message, true);
        button.disabled = false;
        if (hadFocus) button.focus();
      });
  }

  function wire() {
    relabel(document);
    rememberZone();
    wireExpand(document);
    var actor = document.getElementById("actor");
    if (actor) {
      actor.value = sessionStorage.getItem(ACTOR) || "";
      actor.addEventListener("change", function () { sessionStorage.setItem(ACTOR, actor.value.trim()); });
    }
    var form = document.getElementById("token-form");
    if (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var token = document.getElementById("token").value.trim();
        if (actor && actor.value.trim()) sessionStorage.setItem(ACTOR, actor.value.trim());
        if (!token) return;
        sessionStorage.setItem(TOKEN, token);
        document.getElementById("token").value = "";
        status("Token kept for this tab.");
        loadWithToken();
      });
      document.getElementById("forget").addEventListener("click", function () {
        sessionStorage.removeItem(TOKEN);
        status("Token forgotten.");
        if (needsToken) {
          document.getElementById("alerts-body").innerHTML =
            '<p class="empty" id="alerts-locked">Alerts are shown to holders of an admin token: enter it above.</p>';
        }
        if (figuresGuarded) {
          FIGURES.forEach(function (id) {
            var el = document.getElementById(id);
            if (el && locked[id]) el.replaceWith(locked[id].cloneNode(true));
          });
          body.dataset.figures = "hidden";
        }
      });
    }
    var nameForm = document.getElementById("name-form");
    if (nameForm) nameForm.addEventListener("submit", function (event) { event.preventDefault(); });
    document.getElementById("alerts-body").addEventListener("click", function (event) {
      var button = event.target.closest("button[data-action]");
      if (button) act(button);
    });
    if ((needsToken || figuresGuarded) && sessionStorage.getItem(TOKEN)) loadWithToken();
  }

  wire();
})();
