// The session browser and the session view of judge-engine's HTML report.
// Every text from a trace or a judge is set with textContent: never parsed as markup.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("data").textContent);
  const slots = data.slots;
  const sessions = data.sessions;
  const PAGE = 100;
  const state = { sort: "id", dir: 1, page: 0, filters: {}, search: "" };
  const $ = (id) => document.getElementById(id);
  const el = (tag, text, cls) => {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  };

  // Derived per session once: the flags the filters test, and the text the search reads.
  for (const s of sessions) {
    const vs = Object.values(s.verdicts);
    const given = vs.filter((v) => v.status === "ok").map((v) => v.success);
    s.disagree = new Set(given).size > 1;
    s.failed = vs.some((v) => v.status === "failed");
    s.skipped = vs.some((v) => v.status === "skipped");
    s.offLabel = s.label !== null && given.some((g) => g !== s.label);
    // The mode of the first slot that named one; judges that failed it and named
    // different modes disagree on the mode.
    const named = vs.filter((v) => v.status === "ok" && v.success === 0 && v.mode).map((v) => v.mode);
    s.mode = named.length ? named[0] : "";
    s.modeDisagree = new Set(named).size > 1;
    s.haystack = (s.id + "\n" + s.task + "\n" + vs.map((v) => v.reasoning + " " + v.error).join("\n")).toLowerCase();
  }

  const verdictText = (v) => {
    if (!v) return "";
    if (v.status === "ok") return v.success + (v.confidence ? " (" + v.confidence + ")" : "");
    return v.status;
  };
  // A slot answered by a fallback judge says so in its cell.
  const byFallback = (slot, v) => Boolean(v && v.judge && v.judge !== slot);
  const verdictClass = (v) => (!v ? "" : v.status === "ok" ? "v" + v.success : "v" + v.status);

  const columns = [
    { key: "id", title: "session", get: (s) => s.id, cls: "id" },
    { key: "benchmark", title: "benchmark", get: (s) => s.benchmark, filter: true },
    { key: "harness", title: "harness", get: (s) => s.harness, filter: true },
    { key: "model", title: "agent model", get: (s) => s.model, filter: true },
    { key: "label", title: "label", get: (s) => (s.label === null ? "" : String(s.label)), filter: true },
    { key: "mode", title: "failure mode", get: (s) => s.mode, filter: true },
  ];
  for (const slot of slots) {
    columns.push({
      key: "slot:" + slot, title: slot, filter: true, slot: slot,
      get: (s) => verdictText(s.verdicts[slot]),
    });
  }

  function header() {
    const thead = $("browser").tHead;
    const titles = document.createElement("tr");
    const filters = document.createElement("tr");
    filters.className = "filters";
    for (const col of columns) {
      const th = el("th", col.title);
      th.dataset.key = col.key;
      th.setAttribute("aria-sort", state.sort === col.key ? (state.dir > 0 ? "ascending" : "descending") : "none");
      th.addEventListener("click", () => {
        state.dir = state.sort === col.key ? -state.dir : 1;
        state.sort = col.key;
        for (const other of titles.children) other.setAttribute("aria-sort", "none");
        th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
        state.page = 0;
        render();
      });
      titles.appendChild(th);
      const cell = el("th");
      if (col.filter) {
        const select = el("select");
        select.dataset.key = col.key;
        select.setAttribute("aria-label", "filter " + col.title);
        select.appendChild(el("option", "all"));
        select.options[0].value = "";
        const values = [...new Set(sessions.map((s) => col.get(s)))].sort();
        for (const value of values) {
          const option = el("option", value === "" ? "(none)" : value);
          option.value = value === "" ? "\u0000" : value;
          select.appendChild(option);
        }
        select.addEventListener("change", () => {
          state.filters[col.key] = select.value;
          state.page = 0;
          render();
        });
        cell.appendChild(select);
      }
      filters.appendChild(cell);
    }
    thead.appendChild(titles);
    thead.appendChild(filters);
  }

  function visible() {
    const flags = ["disagree", "failed", "skipped", "offLabel", "modeDisagree"].filter((name) => state[name]);
    const words = state.search.toLowerCase().split(/\s+/).filter(Boolean);
    const chosen = columns.filter((c) => state.filters[c.key]);
    const rows = sessions.filter((s) => {
      for (const name of flags) if (!s[name]) return false;
      for (const col of chosen) {
        const want = state.filters[col.key] === "\u0000" ? "" : state.filters[col.key];
        if (col.get(s) !== want) return false;
      }
      for (const word of words) if (!s.haystack.includes(word)) return false;
      return true;
    });
    const col = columns.find((c) => c.key === state.sort) || columns[0];
    rows.sort((a, b) => state.dir * col.get(a).localeCompare(col.get(b), undefined, { numeric: true }));
    return rows;
  }

  function render() {
    const rows = visible();
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    const body = document.createElement("tbody");
    for (const s of rows.slice(state.page * PAGE, (state.page + 1) * PAGE)) {
      const tr = document.createElement("tr");
      tr.dataset.id = s.id;
      for (const col of columns) {
        const td = el("td", col.get(s), col.cls);
        if (col.slot) {
          const v = s.verdicts[col.slot];
          td.className = verdictClass(v);
          if (byFallback(col.slot, v)) {
            td.classList.add("fallback");
            td.appendChild(el("span", " \u21aa " + v.judge, "by"));
            td.title = "answered by the fallback judge " + v.judge;
          }
        }
        tr.appendChild(td);
      }
      tr.addEventListener("click", () => { location.hash = "session=" + encodeURIComponent(s.id); });
      body.appendChild(tr);
    }
    $("browser").replaceChild(body, $("browser").tBodies[0]);
    $("count").textContent = rows.length.toLocaleString() + " of " + sessions.length.toLocaleString() + " sessions";
    $("page").textContent = "page " + (state.page + 1) + " of " + pages;
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
  }

  async function expand(z) {
    const bytes = Uint8Array.from(atob(z), (c) => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return await new Response(stream).text();
  }

  async function show(id) {
    const s = sessions.find((x) => x.id === id);
    if (!s) return;
    $("view").hidden = false;
    $("view-title").textContent = "Session " + s.id;
    for (const row of document.querySelectorAll("#browser tbody tr")) {
      row.classList.toggle("open", row.dataset.id === s.id);
    }
    const facts = $("view-facts");
    facts.replaceChildren();
    const rows = [["benchmark", s.benchmark], ["harness", s.harness], ["agent model", s.model],
      ["label", s.label === null ? "none" : s.label], ["rubric", s.rubric],
      ["source", s.source || "not kept"]];
    for (const [k, v] of rows) {
      const tr = document.createElement("tr");
      tr.append(el("td", k), el("td", v));
      facts.appendChild(tr);
    }
    const box = $("verdicts");
    box.replaceChildren();
    for (const [slot, v] of Object.entries(s.verdicts)) {
      const card = el("div", null, "verdict");
      card.dataset.slot = slot;
      card.appendChild(el("h4", slot + (byFallback(slot, v) ? " answered by the fallback " + v.judge : "")));
      card.appendChild(el("p", "verdict: " + verdictText(v), verdictClass(v)));
      if (v.mode && v.mode !== "none") {
        const where = v.step ? " (first at message " + v.step + ")" : "";
        card.appendChild(el("p", "failure mode: " + v.mode + where, "mode"));
        if (v.note) card.appendChild(el("p", v.note, "note"));
      }
      if (v.reasoning) card.appendChild(el("p", v.reasoning, "reasoning"));
      if (v.error) card.appendChild(el("p", "error: " + v.error, "error"));
      box.appendChild(card);
    }
    const pre = $("transcript");
    pre.textContent = s.z ? "expanding..." : "No transcript was kept for this session (graded before they were kept).";
    $("view").scrollTop = 0;
    if (s.z) {
      try { pre.textContent = await expand(s.z); }
      catch (error) { pre.textContent = "The transcript could not be expanded: " + error; }
    }
  }

  // Tabs: one section at a time, the bar always at the top; a session opens in a
  // panel over the right of the table, which stays where it was.
  const tabs = [...document.querySelectorAll("nav.tabs a[data-tab]")].map((a) => a.dataset.tab);
  function showTab(name) {
    for (const section of document.querySelectorAll("section.tab")) section.hidden = section.id !== name;
    for (const link of document.querySelectorAll("nav.tabs a[data-tab]")) {
      link.setAttribute("aria-selected", String(link.dataset.tab === name));
    }
  }
  function route() {
    const match = location.hash.match(/^#session=(.*)$/);
    if (match) {
      showTab("sessions");
      show(decodeURIComponent(match[1]));
      return;
    }
    $("view").hidden = true;
    for (const row of document.querySelectorAll("#browser tbody tr.open")) row.classList.remove("open");
    const name = location.hash.slice(1);
    showTab(tabs.includes(name) ? name : tabs[0]);
  }
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("view").hidden) location.hash = "#sessions";
  });
  const many = $("show-n1");
  if (many) {
    many.addEventListener("change", () => {
      document.querySelector(".chart-n1").hidden = !many.checked;
      document.querySelector(".chart-many").hidden = many.checked;
    });
  }

  header();
  $("search").addEventListener("input", (e) => { state.search = e.target.value; state.page = 0; render(); });
  for (const [id, name] of [["f-disagree", "disagree"], ["f-failed", "failed"], ["f-skipped", "skipped"], ["f-label", "offLabel"], ["f-modes", "modeDisagree"]]) {
    $(id).addEventListener("change", (e) => { state[name] = e.target.checked; state.page = 0; render(); });
  }
  $("prev").addEventListener("click", () => { state.page -= 1; render(); });
  $("next").addEventListener("click", () => { state.page += 1; render(); });
  window.addEventListener("hashchange", route);
  render();
  route();
  document.body.dataset.readyMs = String(Math.round(performance.now()));
  document.body.dataset.ready = "1";
})();
