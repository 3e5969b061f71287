// Switchboard console: live updates. Pages are complete without this script; it listens
// to the tenant's events (Server-Sent Events) and re-fetches the part of the page that an
// event changes. The stream is closed while the page is hidden or left (browsers allow only
// a few connections per host) and reopened, with a refresh, when it is shown again.
"use strict";
(() => {
  const body = document.body;
  const live = body.dataset.live;
  localizeTimes(document);
  if (!live || live === "none" || !window.EventSource) return;
  const thread = document.querySelector("main[data-conversation]");
  const streamUrl = "/console/events" +
    (thread ? "?conversation=" + encodeURIComponent(thread.dataset.conversation) : "");
  let source = null;
  let timer = null;
  let busy = false;
  let again = false;

  async function refresh() {
    if (busy) { again = true; return; }
    const target = document.querySelector("[data-fragment]");
    if (!target) return;
    busy = true;
    try {
      const response = await fetch(target.dataset.fragment, { credentials: "same-origin" });
      if (response.redirected || response.status === 401) { location.reload(); return; }
      if (!response.ok) return;
      const windowState = response.headers.get("x-service-window");
      if (windowState && target.dataset.window && windowState !== target.dataset.window) {
        location.reload(); // the composer changes (reply box or templates)
        return;
      }
      const template = document.createElement("template");
      template.innerHTML = (await response.text()).trim();
      const fresh = template.content.firstElementChild;
      if (fresh) {
        const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
        localizeTimes(fresh);
        target.replaceWith(fresh);
        if (thread && atBottom) window.scrollTo(0, document.body.scrollHeight);
      }
    } catch (_) {
      // Offline for a moment: the next event or a reload shows the truth.
    } finally {
      busy = false;
      if (again) { again = false; schedule(); }
    }
  }

  function schedule() {
    if (timer) return;
    timer = setTimeout(() => { timer = null; refresh(); }, 80);
  }

  function open() {
    if (source) return;
    source = new EventSource(streamUrl);
    // Whatever changed while the stream was not open (before it first opened, or
    // while it reconnected) is read once it is.
    source.onopen = () => { body.dataset.stream = "open"; schedule(); };
    source.onerror = () => { body.dataset.stream = "reconnecting"; };
    for (const name of ["message", "status", "account", "change", "resync"]) {
      source.addEventListener(name, schedule);
    }
  }

  function close() {
    if (!source) return;
    source.close();
    source = null;
    body.dataset.stream = "closed";
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) { close(); } else { open(); schedule(); }
  });
  window.addEventListener("pagehide", close);
  window.addEventListener("pageshow", (event) => { if (event.persisted) { open(); schedule(); } });
  if (thread) window.scrollTo(0, document.body.scrollHeight);
  open();

  // Times are rendered in UTC; show them in the reader's own zone.
  function localizeTimes(root) {
    for (const el of root.querySelectorAll("time[datetime]")) {
      const at = new Date(el.getAttribute("datetime"));
      if (!isNaN(at)) {
        el.textContent = at.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
        el.title = el.getAttribute("datetime");
      }
    }
  }
})();
