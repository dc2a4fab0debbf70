/* Staff console: live list of conversations and the selected transcript; replies go through
   the API (session auth + CSRF), new messages arrive over /ws/console/. Text only, no HTML. */
(function () {
  "use strict";
  var list = document.getElementById("conversations");
  var messages = document.getElementById("messages");
  var typing = document.getElementById("typing");
  var form = document.getElementById("reply");
  var status = document.getElementById("console-status");
  var csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
  var current = null, socket = null, typingTimer = null;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function entry(id) {
    var item = list.querySelector('[data-conversation="' + id + '"]');
    if (!item) {
      var empty = list.querySelector(".empty");
      if (empty) { empty.remove(); }
      item = el("li");
      item.setAttribute("data-conversation", id);
      item.tabIndex = 0;
      item.appendChild(el("span", "who", "Conversation #" + id));
      item.appendChild(el("span", "state", "new"));
      item.appendChild(el("span", "last", ""));
      list.insertBefore(item, list.firstChild);
    }
    return item;
  }
  function show(frame) {
    if (messages.querySelector('[data-seq="' + frame.seq + '"]')) { return; }
    var node = el("div", "msg " + frame.role, frame.text);
    node.setAttribute("data-seq", frame.seq);
    messages.appendChild(node);
    messages.scrollTop = messages.scrollHeight;
  }
  function open(id) {
    current = String(id);
    Array.prototype.forEach.call(list.children, function (li) {
      li.classList.toggle("active", li.getAttribute("data-conversation") === current);
    });
    entry(current).classList.remove("unread");
    messages.textContent = "";
    form.hidden = false;
    fetch("/api/v1/conversations/" + current + "/messages/?page_size=200", { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (page) { (page.results || []).forEach(show); });
  }
  list.addEventListener("click", function (event) {
    var li = event.target.closest("[data-conversation]");
    if (li) { open(li.getAttribute("data-conversation")); }
  });
  list.addEventListener("keydown", function (event) {
    var li = event.target.closest("[data-conversation]");
    if (li && event.key === "Enter") { open(li.getAttribute("data-conversation")); }
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = form.elements.text.value.trim();
    if (!text || !current) { return; }
    fetch("/api/v1/conversations/" + current + "/messages/", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify({ text: text, role: "agent" })
    }).then(function (r) {
      if (r.ok) { form.elements.text.value = ""; return r.json().then(show); }
      return r.json().then(function (body) { status.textContent = "Reply not sent: " + JSON.stringify(body); });
    });
  });
  form.elements.text.addEventListener("input", function () {
    if (socket && socket.readyState === 1 && current) {
      socket.send(JSON.stringify({ type: "typing", conversation_id: Number(current) }));
    }
  });
  function connect() {
    var url = new URL("/ws/console/", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(url);
    socket.onopen = function () { status.textContent = "live"; };
    socket.onclose = function () { status.textContent = "reconnecting…"; setTimeout(connect, 2000); };
    socket.onmessage = function (event) {
      var frame = JSON.parse(event.data);
      if (frame.type === "message") {
        var item = entry(frame.conversation_id);
        item.querySelector(".last").textContent = frame.role + ": " + frame.text;
        list.insertBefore(item, list.firstChild);
        if (String(frame.conversation_id) === current) { show(frame); } else { item.classList.add("unread"); }
      } else if (frame.type === "typing" && String(frame.conversation_id) === current) {
        typing.textContent = "The customer is typing…";
        clearTimeout(typingTimer);
        typingTimer = setTimeout(function () { typing.textContent = ""; }, 4000);
      }
    };
  }
  connect();
})();
