/* Concierge chat widget: one script tag, no dependencies.
 *
 *   <script src="/static/concierge/widget.js" data-widget-key="KEY" defer></script>
 *
 * Opens a session (POST /api/v1/widget/sessions), then a websocket (/ws/chat/?token=...).
 * Messages carry a client id; unsent ones wait in a queue (kept in sessionStorage) and are
 * sent again after a reconnect, where `resume` fetches whatever arrived meanwhile. Text is
 * always inserted as text, never as HTML. */
(function () {
  "use strict";
  var script = document.currentScript;
  var key = script && script.getAttribute("data-widget-key");
  if (!key || window.ConciergeWidget) { return; }
  var base = new URL(script.src, window.location.href);
  var store = window.sessionStorage;
  var STATE_KEY = "concierge:" + key;
  // token and unsent queue survive a page load; what was seen is rebuilt by resuming from 0,
  // which also redraws the history.
  var state = JSON.parse(store.getItem(STATE_KEY) || "{}");
  state.queue = state.queue || [];
  var seen = {}, last = 0;
  var socket = null, retry = 0, typingTimer = null;

  function save() { store.setItem(STATE_KEY, JSON.stringify({ token: state.token, queue: state.queue })); }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function uuid() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    return "m" + Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  // --- the panel ---
  var style = el("style", {}, [
    ".cc-launch{position:fixed;right:20px;bottom:20px;z-index:2147483000;border:0;border-radius:28px;",
    "padding:14px 20px;background:#264b5d;color:#fff;font:600 15px system-ui,sans-serif;cursor:pointer}",
    ".cc-panel{position:fixed;right:20px;bottom:80px;width:360px;max-width:calc(100vw - 40px);height:520px;",
    "max-height:calc(100vh - 120px);display:none;flex-direction:column;background:#fff;color:#222;",
    "border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);z-index:2147483000;font:14px system-ui,sans-serif}",
    ".cc-panel.open{display:flex}.cc-head{padding:12px 16px;background:#264b5d;color:#fff;border-radius:12px 12px 0 0}",
    ".cc-status{font-size:12px;opacity:.8}.cc-log{flex:1;overflow-y:auto;padding:12px}",
    ".cc-msg{margin:6px 0;padding:8px 12px;border-radius:10px;max-width:85%;white-space:pre-wrap;word-wrap:break-word}",
    ".cc-customer{background:#e3f0f7;margin-left:auto}.cc-bot,.cc-agent{background:#f1f1f1}",
    ".cc-agent{border-left:3px solid #2e7d32}.cc-system{color:#666;font-style:italic;text-align:center;max-width:100%}",
    ".cc-pending{opacity:.6}.cc-sources{font-size:12px;margin-top:4px}.cc-sources a{color:#205067}",
    ".cc-typing{font-size:12px;color:#666;padding:0 12px;min-height:16px}",
    ".cc-form{display:flex;border-top:1px solid #ddd}.cc-form textarea{flex:1;border:0;padding:10px;resize:none;",
    "font:inherit}.cc-form button{border:0;background:#264b5d;color:#fff;padding:0 16px;cursor:pointer}",
    ".cc-csat{padding:8px 12px;border-top:1px solid #eee}.cc-csat button{margin:0 2px}",
  ].join(""));
  var launch = el("button", { "class": "cc-launch", "type": "button", "aria-expanded": "false",
    "aria-controls": "cc-panel" }, "Chat with us");
  var panel = el("section", { "class": "cc-panel", "id": "cc-panel", "role": "dialog", "aria-label": "Support chat" });
  var head = el("div", { "class": "cc-head" });
  head.appendChild(el("strong", {}, "Support"));
  var status = el("div", { "class": "cc-status", "aria-live": "polite" }, "Connecting…");
  head.appendChild(status);
  var log = el("div", { "class": "cc-log", "role": "log", "aria-live": "polite" });
  var typing = el("div", { "class": "cc-typing", "aria-live": "polite" });
  var form = el("form", { "class": "cc-form" });
  var input = el("textarea", { "rows": "2", "aria-label": "Your message", "maxlength": "10000",
    "placeholder": "Type your question…" });
  var send = el("button", { "type": "submit" }, "Send");
  form.appendChild(input); form.appendChild(send);
  [head, log, typing, form].forEach(function (node) { panel.appendChild(node); });

  function mount() {
    document.head.appendChild(style);
    document.body.appendChild(launch);
    document.body.appendChild(panel);
  }
  if (document.body) { mount(); } else { document.addEventListener("DOMContentLoaded", mount); }

  launch.addEventListener("click", function () {
    var open = !panel.classList.contains("open");
    panel.classList.toggle("open", open);
    launch.setAttribute("aria-expanded", String(open));
    if (open) { input.focus(); ensureConnected(); }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && panel.classList.contains("open")) { launch.click(); launch.focus(); }
  });

  // --- rendering ---
  function render(frame, pendingId) {
    if (frame.seq && seen[frame.seq]) { return; }
    if (frame.seq) {
      seen[frame.seq] = true;
      last = Math.max(last, frame.seq);
    }
    if (frame.role === "customer" && frame.seq) {
      // Our own message coming back from the server: settle the pending copy instead.
      var mine = Array.prototype.filter.call(log.querySelectorAll(".cc-pending"), function (node) {
        return node.firstChild && node.firstChild.nodeValue === frame.text;
      })[0];
      if (mine) { mine.classList.remove("cc-pending"); mine.removeAttribute("data-client-id"); return; }
    }
    var node = el("div", { "class": "cc-msg cc-" + (frame.role || "system") + (pendingId ? " cc-pending" : "") },
      frame.text);
    if (pendingId) { node.setAttribute("data-client-id", pendingId); }
    if (frame.sources && frame.sources.length) {
      var sources = el("div", { "class": "cc-sources" }, "Sources: ");
      frame.sources.forEach(function (source, index) {
        if (index) { sources.appendChild(document.createTextNode(", ")); }
        var safe = /^https?:\/\//i.test(source.url || "") ? source.url : null;
        sources.appendChild(safe ? el("a", { "href": safe, "target": "_blank", "rel": "noopener noreferrer" },
          source.title) : el("span", {}, source.title));
      });
      node.appendChild(sources);
    }
    log.appendChild(node);
    if (frame.handoff) {
      log.appendChild(el("div", { "class": "cc-msg cc-system" }, "You're now talking with our support team."));
    }
    log.scrollTop = log.scrollHeight;
  }

  function renderCsat() {
    if (panel.querySelector(".cc-csat")) { return; }
    var box = el("div", { "class": "cc-csat" }, "How did we do? ");
    [1, 2, 3, 4, 5].forEach(function (score) {
      var button = el("button", { "type": "button", "aria-label": score + " out of 5" }, String(score));
      button.addEventListener("click", function () {
        sendFrame({ type: "csat", score: score });
        box.textContent = "Thank you for your rating!";
      });
      box.appendChild(button);
    });
    panel.insertBefore(box, form);
  }

  // --- transport ---
  function sendFrame(frame) {
    if (socket && socket.readyState === 1) { socket.send(JSON.stringify(frame)); return true; }
    return false;
  }

  function flushQueue() { state.queue.forEach(function (item) { sendFrame(item); }); }

  function startSession() {
    var url = new URL("/api/v1/widget/sessions", base);
    return fetch(url, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ widget_key: key })
    }).then(function (response) {
      if (!response.ok) { throw new Error("session " + response.status); }
      return response.json();
    }).then(function (data) { state.token = data.token; seen = {}; last = 0; save(); });
  }

  function connect() {
    var url = new URL("/ws/chat/", base);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("token", state.token);
    socket = new WebSocket(url);
    socket.onopen = function () {
      retry = 0;
      status.textContent = "Online";
      sendFrame({ type: "resume", after: last });
      flushQueue();
    };
    socket.onmessage = function (event) {
      var frame = JSON.parse(event.data);
      if (frame.type === "ack") {
        state.queue = state.queue.filter(function (item) { return item.id !== frame.id; });
        seen[frame.seq] = true;
        last = Math.max(last, frame.seq);
        save();
        var pending = log.querySelector('[data-client-id="' + frame.id.replace(/"/g, "") + '"]');
        if (pending) { pending.classList.remove("cc-pending"); pending.removeAttribute("data-client-id"); }
      } else if (frame.type === "message") {
        typing.textContent = "";
        render(frame);
      } else if (frame.type === "typing") {
        typing.textContent = frame.role === "agent" ? "An agent is typing…" : "The assistant is typing…";
        clearTimeout(typingTimer);
        typingTimer = setTimeout(function () { typing.textContent = ""; }, 4000);
      } else if (frame.type === "error") {
        render({ role: "system", text: frame.message });
        // Not saved (database briefly away) or too fast: send the queued messages again later.
        if (frame.code === "unavailable" || frame.code === "rate_limited") {
          setTimeout(flushQueue, 1000 * (frame.retry_after || 3));
        }
      } else if (frame.type === "csat_request") {
        renderCsat();
      }
    };
    socket.onclose = function (event) {
      socket = null;
      status.textContent = "Reconnecting…";
      if (event.code === 4401 || event.code === 4404) {
        state.token = null; save();  // the session is gone: the next attempt starts a new one
      }
      retry = Math.min(retry + 1, 6);
      setTimeout(ensureConnected, 500 * Math.pow(2, retry - 1));
    };
  }

  function ensureConnected() {
    if (socket) { return; }
    (state.token ? Promise.resolve() : startSession()).then(connect).catch(function () {
      status.textContent = "Offline: your messages will be sent when we're back.";
      retry = Math.min(retry + 1, 6);
      setTimeout(ensureConnected, 500 * Math.pow(2, retry - 1));
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) { return; }
    var frame = { type: "message", id: uuid(), text: text };
    state.queue.push(frame);
    save();
    render({ role: "customer", text: text }, frame.id);
    input.value = "";
    if (!sendFrame(frame)) { ensureConnected(); }
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
    else { sendFrame({ type: "typing" }); }
  });

  window.ConciergeWidget = { open: function () { if (!panel.classList.contains("open")) { launch.click(); } } };
  if (state.token) { ensureConnected(); }
})();
