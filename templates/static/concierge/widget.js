/* Concierge chat widget: one script tag on any website the organization allows, no dependencies.
 *
 *   <script src="https://HOST/static/concierge/widget.js" data-widget-key="KEY" defer></script>
 *   optional: data-locale="en" | "zh-hans"
 *
 * Reads the organization's look and words (GET /api/v1/widget/config), opens or resumes a session
 * (POST /api/v1/widget/sessions), then a websocket (/ws/chat/?token=...). The token lives in
 * localStorage, so a visitor keeps their conversation across page loads, tabs and visits, and is
 * refreshed before it expires. Messages carry a client id; unsent ones wait in a queue and are sent
 * again after a reconnect, where `resume` replays whatever arrived meanwhile. Text is inserted as
 * text; the assistant's and agents' light formatting is built as DOM nodes, never parsed as HTML.
 *
 * API: Concierge.open(), Concierge.close(), Concierge.identify({user_id, user_hash, email, name}),
 *      Concierge.on("message", fn) (fn gets each message frame as it arrives). */
(function () {
  "use strict";
  var script = document.currentScript;
  var key = script && script.getAttribute("data-widget-key");
  if (!key || window.Concierge) { return; }
  var base = new URL(script.src, window.location.href);
  var store = window.localStorage;
  var STATE_KEY = "concierge:" + key;
  var TYPING_EVERY_MS = 2000;

  var STRINGS = {
    en: {
      launch: "Chat with us", title: "Support", connecting: "Connecting…", online: "Online",
      reconnecting: "Reconnecting…", offline: "Offline: your messages will be sent when we're back.",
      placeholder: "Type your question…", send: "Send", yourMessage: "Your message", close: "Close chat",
      sources: "Sources: ", botTyping: "The assistant is typing…", agentTyping: "An agent is typing…",
      handoff: "You're now talking with our support team.", csat: "How did we do? ",
      csatThanks: "Thank you for your rating!", outOf: " out of 5", name: "Name", email: "Email",
      start: "Start chat", prechatIntro: "Tell us who you are, so we can get back to you.",
      refused: "This chat is not available on this website.", unread: " unread", dialog: "Support chat",
      waiting: "Waiting for a person: you are number {n} in the queue.", about: " Expected wait: about {m} min.", aboutHours: " Expected wait: about {h} h.",
      closed: "We're closed now and back {when}.", leave: "Leave your email and we'll answer there too.",
      saved: "Thanks, we'll also reply by email.", joined: "{name} joined the chat.",
      attach: "Send an image or a PDF", sending: "Sending {name}…",
      busy: "We're answering many people right now; your message will be sent in a moment."
    },
    "zh-hans": {
      launch: "在线咨询", title: "客服", connecting: "正在连接…", online: "在线",
      reconnecting: "正在重新连接…", offline: "已离线：恢复连接后会自动发送您的消息。",
      placeholder: "请输入您的问题…", send: "发送", yourMessage: "您的消息", close: "关闭对话",
      sources: "来源：", botTyping: "助手正在输入…", agentTyping: "客服正在输入…",
      handoff: "已为您转接人工客服。", csat: "请为本次服务评分：",
      csatThanks: "感谢您的评价！", outOf: " 分（满分 5 分）", name: "姓名", email: "邮箱",
      start: "开始对话", prechatIntro: "请留下您的联系方式，方便我们回复您。",
      refused: "此网站无法使用该聊天窗口。", unread: " 条未读", dialog: "客服对话",
      waiting: "正在等待人工客服：您在队列中排第 {n} 位。", about: "预计等待约 {m} 分钟。", aboutHours: "预计等待约 {h} 小时。",
      closed: "我们现在已下班，将于 {when} 恢复服务。", leave: "请留下邮箱，我们也会通过邮件回复您。",
      saved: "谢谢，我们也会通过邮件回复您。", joined: "{name} 已加入对话。",
      attach: "发送图片或 PDF", sending: "正在发送 {name}…",
      busy: "当前咨询人数较多，您的消息将在片刻后自动发送。"
    }
  };
  // Every language has every string (a missing one falls back to English).
  Object.keys(STRINGS.en).forEach(function (name) {
    if (!(name in STRINGS["zh-hans"])) { STRINGS["zh-hans"][name] = STRINGS.en[name]; }
  });

  var state = {};
  try { state = JSON.parse(store.getItem(STATE_KEY) || "{}") || {}; } catch (e) { state = {}; }
  state.queue = state.queue || [];
  var seen = {}, last = 0, unread = 0, listeners = [];
  // Answers being written (stream frames), by the seq of the message they answer; and the seqs
  // already answered for good, whose late stream frames are dropped.
  var drafts = {}, answered = {};
  var socket = null, retry = 0, typingTimer = null, lastTypingSent = 0, refreshTimer = null;
  var config = null, refused = false, busyShown = false;
  var t = STRINGS.en;

  function save() {
    store.setItem(STATE_KEY, JSON.stringify({ token: state.token, expires: state.expires, queue: state.queue }));
  }
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
  function api(path, options) {
    return fetch(new URL(path, base), options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) {
          var error = new Error(body.detail || ("HTTP " + response.status));
          error.status = response.status; error.code = body.code;
          throw error;
        }
        return body;
      });
    });
  }
  function pickLocale() {
    var wanted = (script.getAttribute("data-locale") || (config && config.locale) || navigator.language || "en");
    wanted = wanted.toLowerCase();
    return wanted.indexOf("zh") === 0 ? "zh-hans" : "en";
  }

  // --- light formatting: paragraphs, lists, **bold**, *italics*, links (http, https, mailto) ---
  var INLINE = /(\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*|_([^_\s][^_]*)_|\[([^\]]+)\]\(([^)\s]+)\)|(https?:\/\/[^\s<>()]+))/g;
  function safeHref(href) { return /^(https?:|mailto:)/i.test(href) ? href : null; }
  function inline(parent, text) {
    var at = 0, match;
    INLINE.lastIndex = 0;
    while ((match = INLINE.exec(text)) !== null) {
      if (match.index > at) { parent.appendChild(document.createTextNode(text.slice(at, match.index))); }
      if (match[2] !== undefined) { parent.appendChild(el("strong", {}, match[2])); }
      else if (match[3] !== undefined || match[4] !== undefined) { parent.appendChild(el("em", {}, match[3] || match[4])); }
      else {
        var label = match[5] !== undefined ? match[5] : match[7];
        var href = safeHref(match[5] !== undefined ? match[6] : match[7]);
        parent.appendChild(href ? el("a", { href: href, target: "_blank", rel: "noopener noreferrer" }, label)
          : document.createTextNode(match[0]));
      }
      at = INLINE.lastIndex;
    }
    if (at < text.length) { parent.appendChild(document.createTextNode(text.slice(at))); }
  }
  function formatted(text, soft) {
    var root = document.createDocumentFragment();
    (text || "").split(/\n{2,}/).forEach(function (block) {
      var lines = block.split("\n");
      var bullets = lines.every(function (line) { return /^\s*[-*•]\s+/.test(line); });
      var numbers = lines.every(function (line) { return /^\s*\d+[.)]\s+/.test(line); });
      if (bullets || numbers) {
        var list = el(bullets ? "ul" : "ol");
        lines.forEach(function (line) {
          var item = el("li");
          inline(item, line.replace(/^\s*([-*•]|\d+[.)])\s+/, ""));
          list.appendChild(item);
        });
        root.appendChild(list);
      } else {
        var paragraph = el("p");
        // The assistant quotes hard-wrapped articles: a single line break is a space, as in
        // Markdown. People's line breaks are kept.
        if (soft) { inline(paragraph, lines.join(" ")); }
        else {
          lines.forEach(function (line, index) {
            if (index) { paragraph.appendChild(el("br")); }
            inline(paragraph, line);
          });
        }
        root.appendChild(paragraph);
      }
    });
    return root;
  }

  // --- the panel ---
  var root = el("div", { "class": "cc-root" });
  var launch = el("button", { "class": "cc-launch", "type": "button", "aria-expanded": "false", "aria-controls": "cc-panel" });
  var launchLabel = el("span", {}, t.launch);
  var badge = el("span", { "class": "cc-unread", "hidden": "" });
  launch.appendChild(launchLabel); launch.appendChild(badge);
  var panel = el("section", { "class": "cc-panel", "id": "cc-panel", "role": "dialog", "aria-label": t.dialog });
  var head = el("div", { "class": "cc-head" });
  var headText = el("div", { "class": "cc-head-text" });
  var title = el("strong", { "class": "cc-title" }, t.title);
  var status = el("div", { "class": "cc-status", "aria-live": "polite" }, t.connecting);
  var closeButton = el("button", { "class": "cc-close", "type": "button", "aria-label": t.close }, "×");
  headText.appendChild(title); headText.appendChild(status);
  head.appendChild(headText); head.appendChild(closeButton);
  var log = el("div", { "class": "cc-log", "role": "log", "aria-live": "polite" });
  var typing = el("div", { "class": "cc-typing", "aria-live": "polite" });
  var form = el("form", { "class": "cc-form" });
  var input = el("textarea", { "rows": "2", "aria-label": t.yourMessage, "maxlength": "10000", "placeholder": t.placeholder });
  var send = el("button", { "type": "submit" }, t.send);
  var attach = el("button", { "type": "button", "class": "cc-attach", "aria-label": t.attach, "title": t.attach });
  (function () {  // a paperclip drawn as SVG: no emoji font needed
    var ns = "http://www.w3.org/2000/svg", svg = document.createElementNS(ns, "svg"), path = document.createElementNS(ns, "path");
    svg.setAttribute("viewBox", "0 0 24 24"); svg.setAttribute("width", "20"); svg.setAttribute("height", "20");
    svg.setAttribute("aria-hidden", "true");
    path.setAttribute("d", "M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5");
    path.setAttribute("fill", "none"); path.setAttribute("stroke", "currentColor"); path.setAttribute("stroke-width", "1.8");
    path.setAttribute("stroke-linecap", "round");
    svg.appendChild(path); attach.appendChild(svg);
  })();
  var picker = el("input", { "type": "file", "accept": "image/png,image/jpeg,image/gif,image/webp,application/pdf",
    "hidden": "" });
  form.appendChild(attach); form.appendChild(picker); form.appendChild(input); form.appendChild(send);
  [head, log, typing, form].forEach(function (node) { panel.appendChild(node); });
  root.appendChild(launch); root.appendChild(panel);

  function applyConfig() {
    t = STRINGS[pickLocale()];
    document.documentElement.lang = document.documentElement.lang || (t === STRINGS.en ? "en" : "zh-Hans");
    root.setAttribute("lang", t === STRINGS.en ? "en" : "zh-Hans");
    launchLabel.textContent = t.launch;
    panel.setAttribute("aria-label", t.dialog);
    closeButton.setAttribute("aria-label", t.close);
    input.setAttribute("aria-label", t.yourMessage);
    input.setAttribute("placeholder", t.placeholder);
    send.textContent = t.send;
    attach.setAttribute("aria-label", t.attach); attach.setAttribute("title", t.attach);
    status.textContent = socket ? t.online : t.connecting;
    if (!config) { return; }
    title.textContent = config.title || t.title;
    // CSSOM, not a style attribute: allowed under a strict style-src.
    if (/^#[0-9a-fA-F]{6}$/.test(config.color || "")) { root.style.setProperty("--cc-accent", config.color); }
    root.classList.toggle("cc-left", config.position === "left");
    if (config.greeting && !log.firstChild) { render({ role: "bot", text: config.greeting }); }
  }

  function mount() {
    var link = el("link", { "rel": "stylesheet", "href": new URL("widget.css", base).href });
    document.head.appendChild(link);
    document.body.appendChild(root);
  }
  if (document.body) { mount(); } else { document.addEventListener("DOMContentLoaded", mount); }

  function isOpen() { return panel.classList.contains("cc-open"); }
  function setOpen(open) {
    panel.classList.toggle("cc-open", open);
    root.classList.toggle("cc-is-open", open);
    launch.setAttribute("aria-expanded", String(open));
    if (open) {
      unread = 0; showUnread();
      (input.offsetParent ? input : closeButton).focus();
      ensureConnected();
    }
  }
  function showUnread() {
    badge.textContent = unread ? String(unread) : "";
    badge.setAttribute("aria-label", unread + t.unread);
    if (unread) { badge.removeAttribute("hidden"); } else { badge.setAttribute("hidden", ""); }
  }
  launch.addEventListener("click", function () { setOpen(!isOpen()); });
  closeButton.addEventListener("click", function () { setOpen(false); launch.focus(); });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && isOpen()) { setOpen(false); launch.focus(); }
  });

  // --- rendering ---
  function render(frame, pendingId) {
    if (frame.seq && seen[frame.seq]) { return; }
    if (frame.seq) { seen[frame.seq] = true; last = Math.max(last, frame.seq); }
    if (frame.role === "customer" && frame.seq) {
      // Our own message coming back from the server: settle the pending copy instead.
      var mine = Array.prototype.filter.call(log.querySelectorAll(".cc-pending"), function (node) {
        return node.textContent === frame.text;
      })[0];
      if (mine) { mine.classList.remove("cc-pending"); mine.removeAttribute("data-client-id"); return; }
    }
    var role = frame.role || "system";
    var node = el("div", { "class": "cc-msg cc-" + role + (pendingId ? " cc-pending" : "") });
    if (role === "agent" && frame.author) { node.appendChild(el("span", { "class": "cc-author" }, frame.author)); }
    if (role === "bot" || role === "agent") { node.appendChild(formatted(frame.text, role === "bot")); }
    else { node.appendChild(document.createTextNode(frame.text || "")); }
    if (pendingId) { node.setAttribute("data-client-id", pendingId); }
    (frame.attachments || []).forEach(function (file) {
      var href = new URL(file.url, base).href;
      var link = el("a", { "class": "cc-file", "href": href, "target": "_blank", "rel": "noopener noreferrer" });
      if (/^image\//.test(file.type)) { link.appendChild(el("img", { "src": href, "alt": file.name, "class": "cc-image" })); }
      else { link.textContent = "\uD83D\uDCC4 " + file.name + " (" + Math.max(1, Math.round(file.size / 1024)) + " KB)"; }
      node.appendChild(link);
    });
    if (frame.sources && frame.sources.length) {
      var sources = el("div", { "class": "cc-sources" }, t.sources);
      frame.sources.forEach(function (source, index) {
        if (index) { sources.appendChild(document.createTextNode(", ")); }
        var href = /^https?:\/\//i.test(source.url || "") ? source.url : null;
        sources.appendChild(href ? el("a", { "href": href, "target": "_blank", "rel": "noopener noreferrer" },
          source.title) : el("span", {}, source.title));
      });
      node.appendChild(sources);
    }
    var draft = frame.in_reply_to && drafts[frame.in_reply_to];
    if (frame.in_reply_to) { answered[frame.in_reply_to] = true; delete drafts[frame.in_reply_to]; }
    if (draft && draft.parentNode === log) { log.replaceChild(node, draft); } else { log.appendChild(node); }
    if (frame.handoff) { log.appendChild(el("div", { "class": "cc-msg cc-system" }, t.handoff)); }
    log.scrollTop = log.scrollHeight;
  }

  // The assistant's answer as it is written: plain text in a draft bubble, replaced by the
  // final message (formatted, with its sources; the checked answer, which may differ).
  function renderDraft(frame) {
    if (!frame.in_reply_to || answered[frame.in_reply_to]) { return; }
    var draft = drafts[frame.in_reply_to];
    if (draft && Number(draft.getAttribute("data-part")) >= frame.part) { return; }
    if (!draft) {
      draft = el("div", { "class": "cc-msg cc-bot cc-draft", "aria-busy": "true" });
      drafts[frame.in_reply_to] = draft;
      log.appendChild(draft);
    }
    draft.setAttribute("data-part", String(frame.part));
    draft.textContent = frame.text || "";
    typing.textContent = "";
    log.scrollTop = log.scrollHeight;
  }

  function renderCsat() {
    if (panel.querySelector(".cc-csat")) { return; }
    var box = el("div", { "class": "cc-csat" }, t.csat);
    [1, 2, 3, 4, 5].forEach(function (score) {
      var button = el("button", { "type": "button", "aria-label": score + t.outOf }, String(score));
      button.addEventListener("click", function () {
        sendFrame({ type: "csat", score: score });
        box.textContent = t.csatThanks;
      });
      box.appendChild(button);
    });
    panel.insertBefore(box, form);
  }

  var joined = {};
  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, function (_, name) { return values[name]; });
  }
  function clearQueue() { var old = panel.querySelector(".cc-queue"); if (old) { old.remove(); } }
  function renderQueue(frame) {
    clearQueue();
    var box = el("div", { "class": "cc-queue", "role": "status" });
    var text = fill(t.waiting, { n: frame.position });
    var minutes = Math.max(1, Math.round((frame.expected_wait_seconds || 0) / 60));
    if (frame.expected_wait_seconds) {
      text += minutes < 90 ? fill(t.about, { m: minutes }) : fill(t.aboutHours, { h: Math.round(minutes / 60) });
    }
    box.appendChild(el("div", {}, text));
    if (!frame.open && frame.reopens_at) {
      var when = new Date(frame.reopens_at).toLocaleString(t === STRINGS.en ? "en" : "zh-CN",
        { weekday: "long", hour: "2-digit", minute: "2-digit" });
      box.appendChild(el("div", {}, fill(t.closed, { when: when })));
      if (!frame.email_known) {
        var contact = el("form", { "class": "cc-contact" });
        var email = el("input", { "type": "email", "required": "", "aria-label": t.email, "placeholder": t.email,
          "autocomplete": "email" });
        contact.appendChild(el("label", {}, t.leave)); contact.appendChild(email);
        contact.appendChild(el("button", { "type": "submit" }, t.send));
        contact.addEventListener("submit", function (event) {
          event.preventDefault();
          sendFrame({ type: "contact", email: email.value.trim() });
        });
        box.appendChild(contact);
      }
    }
    panel.insertBefore(box, form);
  }

  function refuse(message) {
    refused = true;
    status.textContent = t.refused;
    form.setAttribute("hidden", "");
    if (window.console) { window.console.error("Concierge widget: " + message); }
  }

  // --- pre-chat form ---
  var prechatWaiting = null;
  function prechat() {
    if (!config || config.prechat === "none" || state.token) { return Promise.resolve({}); }
    if (prechatWaiting) { return prechatWaiting; }
    prechatWaiting = new Promise(function (resolve) {
      var box = el("form", { "class": "cc-prechat" });
      box.appendChild(el("div", {}, t.prechatIntro));
      var name = el("input", { "name": "name", "autocomplete": "name" });
      var email = el("input", { "name": "email", "type": "email", "autocomplete": "email" });
      if (config.prechat === "required") { name.required = true; email.required = true; }
      var nameLabel = el("label", {}, t.name); nameLabel.appendChild(name);
      var emailLabel = el("label", {}, t.email); emailLabel.appendChild(email);
      var error = el("div", { "class": "cc-prechat-error", "role": "alert" });
      box.appendChild(nameLabel); box.appendChild(emailLabel); box.appendChild(error);
      box.appendChild(el("button", { "type": "submit" }, t.start));
      form.setAttribute("hidden", "");
      panel.insertBefore(box, form);
      box.addEventListener("submit", function (event) {
        event.preventDefault();
        box.remove(); form.removeAttribute("hidden"); prechatWaiting = null;
        resolve({ name: name.value.trim(), email: email.value.trim() });
        input.focus();
      });
      name.focus();
    });
    return prechatWaiting;
  }

  // --- transport ---
  function sendFrame(frame) {
    if (socket && socket.readyState === 1) { socket.send(JSON.stringify(frame)); return true; }
    return false;
  }
  function flushQueue() { state.queue.forEach(function (item) { sendFrame(item); }); }

  function session(extra) {
    var body = Object.assign({ widget_key: key, token: state.token || "" }, extra || {});
    return api("/api/v1/widget/sessions", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body)
    }).then(function (data) {
      var changed = data.token && state.conversation !== data.conversation_id;
      state.token = data.token;
      state.conversation = data.conversation_id;
      state.expires = Date.now() + data.expires_in * 1000;
      if (changed) { seen = {}; last = 0; drafts = {}; answered = {}; log.textContent = ""; applyConfig(); }
      save();
      scheduleRefresh();
      return data;
    });
  }
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    if (!state.expires) { return; }
    // Refresh at half the lifetime left (at least a minute from now): the same chat, a new token.
    var wait = Math.max(60000, (state.expires - Date.now()) / 2);
    refreshTimer = setTimeout(function () { session().catch(function () {}); }, Math.min(wait, 2147483000));
  }

  function connect() {
    var url = new URL("/ws/chat/", base);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("token", state.token);
    socket = new WebSocket(url);
    socket.onopen = function () {
      retry = 0;
      status.textContent = t.online;
      sendFrame({ type: "resume", after: last });
      flushQueue();
    };
    socket.onmessage = function (event) {
      var frame = JSON.parse(event.data);
      if (frame.type === "ack") {
        busyShown = false;
        state.queue = state.queue.filter(function (item) { return item.id !== frame.id; });
        seen[frame.seq] = true; last = Math.max(last, frame.seq);
        save();
        var pending = log.querySelector('[data-client-id="' + String(frame.id).replace(/"/g, "") + '"]');
        if (pending) { pending.classList.remove("cc-pending"); pending.removeAttribute("data-client-id"); }
      } else if (frame.type === "message") {
        typing.textContent = "";
        var fresh = !(frame.seq && seen[frame.seq]);
        if (fresh && frame.role === "agent") {
          clearQueue();
          if (frame.author && !joined[frame.author]) {
            joined[frame.author] = true;
            render({ role: "system", text: fill(t.joined, { name: frame.author }) });
          }
        }
        render(frame);
        if (fresh && frame.role !== "customer") {
          if (!isOpen()) { unread += 1; showUnread(); }
          listeners.forEach(function (fn) { try { fn(frame); } catch (e) { /* the page's handler */ } });
        }
      } else if (frame.type === "stream") {
        renderDraft(frame);
      } else if (frame.type === "typing") {
        typing.textContent = frame.role === "agent" ? t.agentTyping : t.botTyping;
        clearTimeout(typingTimer);
        typingTimer = setTimeout(function () { typing.textContent = ""; }, 4000);
      } else if (frame.type === "error") {
        if (frame.code === "origin_not_allowed") { refuse(frame.message); return; }
        if (frame.code === "busy") {
          // The server is at capacity and did not store the message: say so once, then send
          // it again after retry_after with jitter, so refused clients do not return together.
          if (!busyShown) { busyShown = true; render({ role: "system", text: t.busy }); }
          setTimeout(flushQueue, 1000 * (frame.retry_after || 3) * (1 + Math.random() * 0.5));
          return;
        }
        if (frame.code === "assistant_unavailable") {  // an answer being written will not be finished
          Object.keys(drafts).forEach(function (key) { log.removeChild(drafts[key]); delete drafts[key]; });
        }
        render({ role: "system", text: frame.message });
        // Not saved (database briefly away) or too fast: send the queued messages again later.
        if (frame.code === "unavailable" || frame.code === "rate_limited") {
          setTimeout(flushQueue, 1000 * (frame.retry_after || 3));
        }
      } else if (frame.type === "csat_request") {
        renderCsat();
      } else if (frame.type === "queue") {
        renderQueue(frame);
      } else if (frame.type === "contact") {
        var contactForm = panel.querySelector(".cc-contact");
        if (contactForm) { contactForm.replaceWith(el("div", {}, t.saved)); }
      }
    };
    socket.onclose = function (event) {
      socket = null;
      if (event.code === 4403 || refused) { refused = true; return; }
      status.textContent = t.reconnecting;
      if (event.code === 4401 || event.code === 4404) {
        state.token = null; save();  // the session is gone: the next attempt starts a new one
      }
      retry = Math.min(retry + 1, 6);
      setTimeout(ensureConnected, 500 * Math.pow(2, retry - 1));
    };
  }

  // A token with a minute left, or a new session (after the pre-chat form when there is one).
  function sessionReady() {
    if (state.token && state.expires > Date.now() + 60000) { return Promise.resolve(); }
    return prechat().then(function (details) { return session(details); });
  }

  var connecting = false;
  function ensureConnected() {
    if (socket || refused || connecting) { return; }
    connecting = true;
    sessionReady().then(function () { connecting = false; connect(); }).catch(function (error) {
      connecting = false;
      if (error.status === 403) { refuse(error.message); return; }
      if (error.status === 400 && state.token) { state.token = null; save(); }
      status.textContent = t.offline;
      retry = Math.min(retry + 1, 6);
      setTimeout(ensureConnected, 500 * Math.pow(2, retry - 1));
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text || refused) { return; }
    var frame = { type: "message", id: uuid(), text: text };
    state.queue.push(frame);
    save();
    render({ role: "customer", text: text }, frame.id);
    input.value = "";
    if (!sendFrame(frame)) { ensureConnected(); }
  });
  attach.addEventListener("click", function () { picker.click(); });
  picker.addEventListener("change", function () {
    var file = picker.files && picker.files[0];
    picker.value = "";
    if (!file || refused) { return; }
    var note = el("div", { "class": "cc-msg cc-system" }, fill(t.sending, { name: file.name }));
    log.appendChild(note);
    sessionReady().then(function () {
      var body = new FormData();
      body.append("token", state.token); body.append("id", uuid()); body.append("file", file);
      return api("/api/v1/widget/attachments", { method: "POST", body: body });
    }).then(function () { note.remove(); ensureConnected(); }, function (error) {
      note.textContent = error.message;  // the server says what is wrong: size, type, damage
    });
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); return; }
    var now = Date.now();
    if (now - lastTypingSent >= TYPING_EVERY_MS && sendFrame({ type: "typing" })) { lastTypingSent = now; }
  });

  function reconnect() {
    if (socket) { socket.onclose = null; socket.close(); socket = null; }
    ensureConnected();
  }

  window.Concierge = {
    open: function () { if (!isOpen()) { setOpen(true); } },
    close: function () { if (isOpen()) { setOpen(false); } },
    identify: function (user) {
      user = user || {};
      var identity = { user_id: String(user.user_id || ""), user_hash: String(user.user_hash || ""),
        email: user.email || "", name: user.name || "" };
      return session({ identity: identity, token: "" }).then(function (data) { reconnect(); return data; })
        .catch(function (error) {
          if (window.console) { window.console.error("Concierge widget: " + error.message); }
          throw error;
        });
    },
    on: function (name, fn) { if (name === "message" && typeof fn === "function") { listeners.push(fn); } }
  };
  window.ConciergeWidget = window.Concierge;

  api("/api/v1/widget/config?key=" + encodeURIComponent(key), {}).then(function (data) {
    config = data; applyConfig();
    if (state.token) { ensureConnected(); }
  }).catch(function (error) {
    applyConfig();
    if (error.status === 403) { refuse(error.message); return; }
    if (!error.status && window.console) {
      // A browser hides why a cross-origin request failed; say what the usual reasons are.
      window.console.error("Concierge widget: no answer from " + base.origin + ". Either this website (" +
        window.location.origin + ") is not in the organization's allowed websites, or the server is unreachable.");
    }
    if (state.token) { ensureConnected(); }
  });
  applyConfig();
})();
