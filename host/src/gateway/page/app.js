// The live seat map: availability from GET /events/{id}/seats, then kept
// current by the server-sent events of /events/{id}/events; bookings made
// with the API and followed on their own status stream. An availability
// event redraws only the tiles whose subsection changed, and refetches the
// chosen subsection's seats only when its version moved (and then with
// If-None-Match, so an unchanged map costs a 304).
"use strict";

const state = {
  event: null, auth: "jwt", availability: [], selected: null, picked: new Set(), following: null,
  // The grid drawn: its subsection, the version asked for, the map's ETag.
  grid: { key: null, stamp: null, etag: null }, gridRequests: 0,
};
const $ = (id) => document.getElementById(id);

function key(a) { return `${a.section}-${a.subsection}`; }

// What identifies a subsection's state: its version (counts if absent).
function stamp(a) { return a.version ?? `${a.rows}x${a.seats_per_row}:${a.reserved}/${a.sold}`; }

function colour(a) {
  const total = a.rows * a.seats_per_row;
  const share = total ? a.available / total : 0;
  // Green when free, through amber, to red when nearly gone.
  return `hsl(${Math.round(share * 120)}, 62%, 40%)`;
}

function fillTile(tile, a) {
  tile.className = "tile" + (a.available === 0 ? " soldout" : "") + (state.selected === key(a) ? " selected" : "");
  tile.style.background = colour(a);
  tile.dataset.section = a.section;
  tile.dataset.subsection = a.subsection;
  tile.dataset.available = a.available;
  tile.dataset.reserved = a.reserved;
  tile.dataset.sold = a.sold;
  tile.dataset.stamp = stamp(a);
  tile.title = `${a.section}-${a.subsection}: ${a.available} available, ${a.reserved} reserved, ${a.sold} sold, ${a.price} each`;
  tile.innerHTML = `<span>${a.subsection}</span><b>${a.available}</b>`;
}

// The whole venue when its subsections changed, else only the changed tiles.
function renderVenue() {
  const venue = $("venue");
  const tiles = [...venue.querySelectorAll(".tile")];
  const same = tiles.length === state.availability.length
    && tiles.every((t, i) => `${t.dataset.section}-${t.dataset.subsection}` === key(state.availability[i]));
  if (same) {
    state.availability.forEach((a, i) => {
      const marked = tiles[i].classList.contains("selected") === (state.selected === key(a));
      if (tiles[i].dataset.stamp !== String(stamp(a)) || !marked) fillTile(tiles[i], a);
    });
  } else {
    const sections = new Map();
    for (const a of state.availability) {
      if (!sections.has(a.section)) sections.set(a.section, []);
      sections.get(a.section).push(a);
    }
    venue.replaceChildren(...[...sections].map(([name, subs]) => {
      const box = document.createElement("div");
      box.className = "section";
      box.dataset.section = name;
      const title = document.createElement("h3");
      title.textContent = `Section ${name}`;
      const row = document.createElement("div");
      row.className = "tiles";
      for (const a of subs) {
        const tile = document.createElement("div");
        fillTile(tile, a);
        tile.addEventListener("click", () => select(key(a)));
        row.append(tile);
      }
      box.append(title, row);
      return box;
    }));
  }
  const sum = (f) => state.availability.reduce((n, a) => n + a[f], 0);
  $("totals").textContent = `${sum("available")} available · ${sum("reserved")} reserved · ${sum("sold")} sold`;
  $("totals").dataset.available = sum("available");
  const options = $("subsection");
  if (options.options.length !== state.availability.length) {
    options.replaceChildren(...state.availability.map((a) => new Option(`${a.section}-${a.subsection} (${a.price})`, key(a))));
    if (state.selected) options.value = state.selected;
  }
}

async function select(k) {
  state.selected = k;
  state.picked.clear();
  $("subsection").value = k;
  renderVenue();
  await renderGrid();
}

// Draws the chosen subsection's seats; asks with the drawn map's ETag, so
// an unchanged map is a 304 and nothing is redrawn.
async function renderGrid() {
  if (!state.selected) return;
  const k = state.selected;
  const [section, subsection] = splitKey(k);
  const entry = state.availability.find((a) => key(a) === k);
  const asked = entry ? stamp(entry) : null;
  const request = ++state.gridRequests;
  const headers = state.grid.key === k && state.grid.etag ? { "If-None-Match": state.grid.etag } : {};
  const response = await fetch(`/events/${state.event}/sections/${encodeURIComponent(section)}/subsections/${subsection}/seats`,
    { headers, cache: "no-store" }).catch(() => null);
  // A later request (another subsection, a newer version) supersedes this one.
  if (!response || request !== state.gridRequests) return;
  if (response.status === 304) { state.grid.stamp = asked; return; }
  if (!response.ok) return;
  const map = await response.json();
  if (request !== state.gridRequests) return;
  state.grid = { key: k, stamp: asked, etag: response.headers.get("ETag") };
  const grid = $("grid");
  grid.style.gridTemplateColumns = `repeat(${map.seats_per_row}, .8rem)`;
  const seats = [];
  map.seats.forEach((row, r) => row.forEach((s, c) => {
    const pos = `${r + 1}-${c + 1}`;
    const seat = document.createElement("button");
    seat.type = "button";
    seat.className = `seat ${s}` + (state.picked.has(pos) ? " picked" : "");
    seat.title = `row ${r + 1}, seat ${c + 1}: ${s}`;
    seat.disabled = s !== "available";
    seat.addEventListener("click", () => {
      if (state.picked.has(pos)) state.picked.delete(pos); else if (state.picked.size < 4) state.picked.add(pos);
      const mode = state.picked.size > 0 ? "manual" : "best_available";
      document.querySelector(`input[name=mode][value=${mode}]`).checked = true;
      if (state.picked.size) $("quantity").value = String(state.picked.size);
      seat.classList.toggle("picked", state.picked.has(pos));
    });
    seats.push(seat);
  }));
  grid.replaceChildren(...seats);
}

function splitKey(k) {
  const at = k.lastIndexOf("-");
  return [k.slice(0, at), Number(k.slice(at + 1))];
}

function headers() {
  const who = $("who").value.trim();
  if (state.auth === "none") return who ? { "X-Buyer-Id": who } : {};
  return who ? { Authorization: `Bearer ${who}` } : {};
}

function show(html) { $("booking").innerHTML = html; }
function escape(s) { return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]); }

async function book(e) {
  e.preventDefault();
  if (!state.selected) { show(`<span class="error">pick a subsection first</span>`); return; }
  const [section, subsection] = splitKey(state.selected);
  const mode = document.querySelector("input[name=mode]:checked").value;
  const body = { section, subsection, quantity: Number($("quantity").value), seat_selection_mode: mode };
  if (mode === "manual") body.seat_positions = [...state.picked];
  const response = await fetch(`/events/${state.event}/bookings`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Idempotency-Key": crypto.randomUUID(), ...headers() },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (response.status !== 202) {
    show(`<span class="error">${response.status}: ${escape(answer.message || "refused")}${answer.field ? ` (${escape(answer.field)})` : ""}</span>`);
    return;
  }
  state.picked.clear();
  follow(answer.booking_id);
}

// EventSource cannot send a bearer token, so the booking's stream is read with fetch.
async function follow(id) {
  // Only the latest booking is shown: stop following the one before.
  if (state.following) state.following.abort();
  const following = new AbortController();
  state.following = following;
  show(`booking <code>${escape(id)}</code>: <span class="status">processing</span>`);
  const response = await fetch(`/bookings/${id}/events`, { headers: headers(), signal: following.signal }).catch(() => null);
  if (!response) return;
  if (!response.ok || !response.body) return;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").find((l) => l.startsWith("data: "));
      if (data) renderBooking(JSON.parse(data.slice(6)));
    }
  }
}

function renderBooking(b) {
  const seats = b.seats ? ` seats ${b.seats.join(", ")}` : "";
  const price = b.total_price != null ? `, ${b.total_price}` : "";
  const reason = b.reason ? ` — ${escape(b.reason)}` : "";
  const actions = b.status === "pending_payment"
    ? ` <button data-act="pay">Pay</button> <button data-act="cancel">Cancel</button>` : "";
  show(`booking <code>${escape(b.booking_id)}</code>: <span class="status" data-status="${b.status}">${b.status.replace("_", " ")}</span>${seats}${price}${reason}${actions}`);
  for (const button of $("booking").querySelectorAll("button[data-act]")) {
    button.addEventListener("click", async () => {
      button.disabled = true;
      const response = await fetch(`/bookings/${b.booking_id}/${button.dataset.act}`, { method: "POST", headers: headers() });
      if (!response.ok) {
        const answer = await response.json().catch(() => ({}));
        $("booking").insertAdjacentHTML("beforeend", `<div class="error">${response.status}: ${escape(answer.message || "refused")}</div>`);
        button.disabled = false;
      }
    });
  }
}

function live() {
  const source = new EventSource(`/events/${state.event}/events`);
  source.addEventListener("open", () => { $("live").className = "live on"; });
  source.addEventListener("error", () => { $("live").className = "live off"; });
  const update = () => {
    renderVenue();
    // The chosen subsection's seats only when it changed.
    const chosen = state.availability.find((a) => key(a) === state.selected);
    if (chosen && (state.grid.key !== state.selected || state.grid.stamp !== stamp(chosen))) renderGrid();
  };
  // The whole venue first (and after a gap), then only the subsections that changed.
  source.addEventListener("availability", (e) => {
    state.availability = JSON.parse(e.data);
    update();
  });
  source.addEventListener("availability_changes", (e) => {
    const changed = new Map(JSON.parse(e.data).map((a) => [key(a), a]));
    state.availability = state.availability.map((a) => changed.get(key(a)) || a);
    const known = new Set(state.availability.map(key));
    const added = [...changed.values()].filter((a) => !known.has(key(a)));
    if (added.length) {
      state.availability = [...state.availability, ...added].sort((a, b) =>
        a.section < b.section ? -1 : a.section > b.section ? 1 : a.subsection - b.subsection);
    }
    update();
  });
}

async function start() {
  const about = await (await fetch("/about")).json();
  state.event = about.event_id;
  state.auth = about.auth;
  $("event").textContent = `— event ${about.event_id}`;
  if (about.auth === "none") {
    $("who-label").firstChild.textContent = "Buyer id ";
    $("who").placeholder = "1";
  } else {
    $("who").placeholder = "turnstile gateway token --buyer N";
    $("who").value = localStorage.getItem("turnstile-token") || "";
    $("who").addEventListener("change", () => localStorage.setItem("turnstile-token", $("who").value.trim()));
  }
  state.availability = await (await fetch(`/events/${state.event}/seats`)).json();
  renderVenue();
  document.body.dataset.ready = "true";
  $("subsection").addEventListener("change", () => select($("subsection").value));
  $("form").addEventListener("submit", book);
  live();
}

start();
