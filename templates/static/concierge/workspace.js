/* The agent's workspace, live over /ws/console/ (session auth). On the ticket page: new
   messages and the customer's typing appear in the transcript, a reconnect fetches what was
   missed, other agents on the same ticket are shown (viewing, typing), ticket changes are
   announced, and the composer inserts macros and the assistant's suggested reply. In the
   inbox: the view counts follow the desk. Everywhere: a toast when a colleague mentions you.
   Text only: nothing received is inserted as HTML. */
(function () {
  "use strict";
  var page = document.getElementById("cc-workspace");
  var inbox = document.getElementById("cc-inbox");
  var ticketId = page ? Number(page.dataset.ticket) : null;
  var conversationId = page && page.dataset.conversation ? Number(page.dataset.conversation) : null;
  var lastSeq = page ? Number(page.dataset.lastSeq || 0) : 0;
  var socket = null, opened = false, retry = 1000, typingTimer = null, lastTypingSent = 0;
  var viewers = {};
  var textsNode = document.getElementById("cc-texts");
  var TEXTS = textsNode ? JSON.parse(textsNode.textContent) : {};
  function t(key, values) {
    var text = TEXTS[key] || key;
    Object.keys(values || {}).forEach(function (name) { text = text.split("{" + name + "}").join(values[name]); });
    return text;
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function csrf() {
    var input = document.querySelector("[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }
  function setConnection(text) {
    var node = document.getElementById("cc-connection");
    if (node) { node.textContent = text; }
  }
  function toast(text, href) {
    var box = el("div", "cc-toast");
    box.setAttribute("role", "status");
    if (href) { var link = el("a", "", text); link.href = href; box.appendChild(link); } else { box.textContent = text; }
    document.body.appendChild(box);
    setTimeout(function () { box.remove(); }, 8000);
  }

  // --- the transcript ---
  var transcript = document.getElementById("transcript");
  function showMessage(frame) {
    if (!transcript || transcript.querySelector('[data-seq="' + frame.seq + '"]')) { return; }
    var empty = transcript.querySelector(".cc-empty");
    if (empty) { empty.remove(); }
    var node = el("div", "cc-msg role-" + frame.role);
    node.setAttribute("data-seq", frame.seq);
    var who = frame.role.charAt(0).toUpperCase() + frame.role.slice(1);
    node.appendChild(el("div", "cc-meta", "#" + frame.seq + " · " + who + (frame.author ? " (" + frame.author + ")" : "") + " · " + t("now")));
    node.appendChild(el("div", "cc-text", frame.text));
    transcript.appendChild(node);
    transcript.scrollTop = transcript.scrollHeight;
    lastSeq = Math.max(lastSeq, Number(frame.seq));
    if (frame.role === "customer") { document.getElementById("cc-typing").textContent = ""; }
  }
  function catchUp() {
    if (!conversationId) { return; }
    fetch("/api/v1/conversations/" + conversationId + "/messages/?after=" + lastSeq, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : { results: [] }; })
      .then(function (body) { (body.results || []).forEach(showMessage); });
  }

  // --- who else is here ---
  function renderPresence() {
    var box = document.getElementById("cc-presence");
    if (!box) { return; }
    var names = Object.keys(viewers);
    if (!names.length) { box.hidden = true; box.textContent = ""; return; }
    box.hidden = false;
    box.textContent = names.map(function (name) {
      return t(viewers[name].typing ? "typing" : "viewing", { name: name });
    }).join(" · ");
  }
  function onPresence(frame) {
    if (frame.ticket_id !== ticketId || frame.user === page.dataset.user) { return; }
    if (frame.state === "left") { delete viewers[frame.user]; }
    else {
      var entry = viewers[frame.user] || {};
      clearTimeout(entry.timer);
      entry.typing = frame.state === "typing";
      if (entry.typing) {
        entry.timer = setTimeout(function () { entry.typing = false; renderPresence(); }, 5000);
      }
      viewers[frame.user] = entry;
    }
    renderPresence();
  }

  function onTicket(frame) {
    if (inbox) { refreshCounts(); }
    if (!page || frame.ticket_id !== ticketId) { return; }
    var live = document.getElementById("cc-live");
    live.hidden = false;
    live.textContent = (frame.actor || t("system")) + ": " + frame.label + (frame.message ? " — " + frame.message : "");
    if (frame.field === "status" && frame.after) { document.getElementById("cc-status").textContent = String(frame.after).replace("_", " "); }
    if (frame.field === "assignee") {
      document.getElementById("cc-assignee").textContent = frame.after ? (frame.message || "").replace(/^Assigned to /, "") : t("unassigned");
    }
    var timeline = document.getElementById("timeline");
    if (timeline) {
      var item = el("div", "cc-event");
      item.appendChild(el("span", "cc-meta", t("now") + " · " + (frame.actor || t("system"))));
      item.appendChild(el("br"));
      item.appendChild(document.createTextNode(frame.label + (frame.message ? " — " + frame.message : "")));
      timeline.appendChild(item);
    }
  }

  // --- the inbox counts ---
  var countsTimer = null;
  function refreshCounts() {
    var stale = document.getElementById("cc-inbox-stale");
    if (stale) { stale.hidden = false; }
    clearTimeout(countsTimer);
    countsTimer = setTimeout(function () {
      fetch(inbox.dataset.countsUrl, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : {}; })
        .then(function (counts) {
          Object.keys(counts).forEach(function (key) {
            var badge = inbox.querySelector('[data-view="' + key + '"] .cc-count');
            if (badge) { badge.textContent = counts[key]; }
          });
        });
    }, 300);
  }

  function send(frame) {
    if (socket && socket.readyState === 1) { socket.send(JSON.stringify(frame)); }
  }
  function connect() {
    var url = new URL("/ws/console/", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(url);
    socket.onopen = function () {
      setConnection(t("live"));
      retry = 1000;
      if (page) { send({ type: "watch", ticket_id: ticketId }); }
      if (opened) { catchUp(); if (inbox) { refreshCounts(); } }
      opened = true;
    };
    socket.onclose = function () {
      setConnection(t("reconnecting"));
      viewers = {};
      renderPresence();
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 15000);
    };
    socket.onmessage = function (event) {
      var frame = JSON.parse(event.data);
      if (frame.type === "message") {
        if (inbox) { refreshCounts(); }
        if (page && frame.conversation_id === conversationId) { showMessage(frame); }
      } else if (frame.type === "typing" && page && frame.conversation_id === conversationId && frame.role === "customer") {
        var typing = document.getElementById("cc-typing");
        typing.textContent = t("customer_typing");
        clearTimeout(typingTimer);
        typingTimer = setTimeout(function () { typing.textContent = ""; }, 4000);
      } else if (frame.type === "presence" && page) {
        onPresence(frame);
      } else if (frame.type === "ticket") {
        onTicket(frame);
      } else if (frame.type === "notification") {
        toast(t("mentioned", { by: frame.by, ticket: frame.ticket_id, text: frame.text }), "/admin/tickets/ticket/" + frame.ticket_id + "/change/");
      }
    };
  }

  // --- the composer ---
  function setupComposer() {
    var reply = document.getElementById("reply-text");
    var note = document.getElementById("note-text");
    if (!reply) { return; }
    var suggestionId = document.getElementById("cc-suggestion-id");
    reply.addEventListener("input", function () {
      var now = Date.now();
      if (now - lastTypingSent > 2000 && conversationId) {
        lastTypingSent = now;
        send({ type: "typing", conversation_id: conversationId, ticket_id: ticketId });
      }
    });
    var macro = document.getElementById("cc-macro");
    if (macro) {
      var preview = document.getElementById("cc-macro-preview");
      var insert = document.getElementById("cc-macro-insert");
      macro.addEventListener("change", function () {
        var option = macro.selectedOptions[0];
        var chosen = option && option.value;
        preview.hidden = !chosen;
        insert.disabled = !chosen;
        if (chosen) {
          preview.querySelector(".cc-preview-text").textContent = option.dataset.text || t("no_reply_text");
          preview.querySelector(".cc-preview-changes").textContent = option.dataset.changes ? t("also_sets") + " " + option.dataset.changes : "";
        }
      });
      insert.addEventListener("click", function () {
        var option = macro.selectedOptions[0];
        if (!option || !option.value) { return; }
        reply.value = reply.value ? reply.value + "\n\n" + option.dataset.text : option.dataset.text;
        reply.focus();
      });
    }
    var box = document.getElementById("cc-suggestion");
    var suggest = document.getElementById("cc-suggest");
    var current = null;
    function askSuggestion() {
      suggest.disabled = true;
      box.hidden = false;
      box.querySelector(".cc-preview-text").textContent = t("drafting");
      box.querySelector(".cc-citations").textContent = "";
      fetch(page.dataset.suggestUrl, { method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf() } })
        .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
        .then(function (result) {
          suggest.disabled = false;
          if (!result.ok) { current = null; box.querySelector(".cc-preview-text").textContent = result.body.error; return; }
          current = result.body;
          box.querySelector(".cc-preview-text").textContent = current.text;
          document.getElementById("cc-suggestion-kind").textContent = current.generated ? t("from_llm") : t("from_kb");
          current.citations.forEach(function (c) {
            var li = el("li"), a = el("a", "", c.title);
            a.href = c.url; a.target = "_blank"; a.rel = "noopener";
            li.appendChild(a);
            box.querySelector(".cc-citations").appendChild(li);
          });
        })
        .catch(function () { suggest.disabled = false; box.querySelector(".cc-preview-text").textContent = t("no_server"); });
    }
    suggest.addEventListener("click", askSuggestion);
    document.getElementById("cc-suggestion-insert").addEventListener("click", function () {
      if (!current) { return; }
      reply.value = current.text;
      suggestionId.value = current.id;
      box.hidden = true;
      reply.focus();
    });
    document.getElementById("cc-suggestion-discard").addEventListener("click", function () {
      if (current) {
        fetch(page.dataset.suggestUrl + current.id + "/discard/", { method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf() } });
      }
      current = null;
      suggestionId.value = "";
      box.hidden = true;
    });
    function submitOnCtrlEnter(area, form) {
      area.addEventListener("keydown", function (event) {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
          event.preventDefault();
          if (area.value.trim()) { form.requestSubmit(); }
        }
      });
    }
    submitOnCtrlEnter(reply, document.getElementById("reply-form"));
    if (note) { submitOnCtrlEnter(note, document.getElementById("note-form")); }
    document.addEventListener("keydown", function (event) {
      if (!event.altKey || event.ctrlKey || event.metaKey) { return; }
      var key = event.key.toLowerCase();
      if (key === "r") { event.preventDefault(); reply.focus(); }
      else if (key === "n" && note) { event.preventDefault(); note.focus(); }
      else if (key === "s") { event.preventDefault(); askSuggestion(); }
      else if (key === "j" && page.dataset.next) { event.preventDefault(); window.location.href = page.dataset.next; }
    });
  }

  if (page) { setupComposer(); if (transcript) { transcript.scrollTop = transcript.scrollHeight; } }
  if (page || inbox) { connect(); }
  window.addEventListener("pagehide", function () { if (socket) { socket.close(); } });
})();
