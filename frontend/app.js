// The page: customer type-ahead, re-ranked feed, text and photo search, facet filters, paging.
// It talks only to the gateway, on the same origin (the gateway or nginx serves this file).
"use strict";

const API = window.HM_API_BASE || "";
const PAGE_SIZE = 12;
const SEARCH_MAX = 100; // the search service returns at most 100 results
const FACET_COLUMNS = [
  ["product_type_name", "Type"],
  ["product_group_name", "Group"],
  ["colour_group_name", "Colour"],
  ["perceived_colour_master_name", "Colour family"],
  ["index_group_name", "Index"],
  ["department_name", "Department"],
  ["garment_group_name", "Garment group"],
  ["graphical_appearance_name", "Pattern"],
];

const state = {
  customer: null,     // selected customer id
  view: "feed",       // feed | text | image
  query: "",
  searchMode: "hybrid",
  image: null,        // File
  page: 0,
  total: 0,
  filters: {},        // column -> value
  priceMin: null,
  priceMax: null,
};
let requestSeq = 0;   // answers to superseded requests are ignored
let customerSeq = 0;  // the same for customer look-ups

const $ = (id) => document.getElementById(id);

// --- helpers ---------------------------------------------------------------------------

async function api(path, options = {}) {
  const response = await fetch(API + path, options);
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const detail = body && body.detail;
    let message = typeof detail === "string" ? detail
      : Array.isArray(detail) ? detail.map((d) => d.msg || JSON.stringify(d)).join("; ")
      : detail && detail.message ? detail.message : `HTTP ${response.status}`;
    if (response.status === 503 && typeof detail !== "string") message = "A service is unavailable right now.";
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

function debounce(fn, ms) {
  let timer = null;
  const debounced = (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  debounced.cancel = () => clearTimeout(timer);
  return debounced;
}

function activeFilters() {
  const filters = {};
  for (const [column, value] of Object.entries(state.filters)) if (value) filters[column] = [value];
  if (state.priceMin !== null) filters.price_min = state.priceMin;
  if (state.priceMax !== null) filters.price_max = state.priceMax;
  return filters;
}

function setLoading(on) {
  $("loading").hidden = !on;
  $("grid").setAttribute("aria-busy", on ? "true" : "false");
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

function showNotice(body) {
  const notice = $("notice");
  const degraded = (body && body.degraded) || [];
  if (degraded.length) {
    const how = body.source === "popular" ? "showing popular items for this customer's age group"
      : body.source === "candidates" ? "showing recommendations without re-ranking" : "results may be incomplete";
    notice.textContent = `Degraded: ${degraded.join(", ")} unavailable — ${how}.`;
    notice.hidden = false;
  } else {
    notice.hidden = true;
    notice.textContent = "";
  }
}

function formatPrice(price) {
  return price === null || price === undefined ? "" : price.toFixed(4);
}

// --- warming up ------------------------------------------------------------------------------
// A fresh `make run` serves quick models and text search first and reaches full quality in the
// background; /status says which parts are still warming up. Polled only while something is.

const STATUS_POLL_MS = 5000;

function renderWarming(status) {
  const banner = $("warming");
  const warming = Object.entries(status.parts || {}).filter(([, part]) => part.state === "warming");
  banner.replaceChildren();
  for (const [name, part] of warming) {
    const line = document.createElement("span");
    line.dataset.part = name;
    line.textContent = `${name.replace("_", " ")}: ${part.message}`;
    banner.append(line);
  }
  banner.hidden = warming.length === 0;
  const image = (status.parts || {}).image_search;
  const hint = $("image-warming");
  hint.hidden = !image || image.state === "ready";
  hint.textContent = image && image.state !== "ready" ? `Not yet: ${image.message}` : "";
  return warming.length > 0;
}

async function pollStatus() {
  let again = true;
  try {
    again = renderWarming(await api("/status"));
  } catch (_) {
    again = true; // the gateway may be restarting: try again later, quietly
  }
  if (again) setTimeout(pollStatus, STATUS_POLL_MS);
}

// --- rendering ---------------------------------------------------------------------------

function renderCards(items) {
  const grid = $("grid");
  grid.replaceChildren();
  for (const item of items) {
    const card = document.createElement("article");
    card.className = "card";
    card.setAttribute("data-testid", "card");
    card.dataset.articleId = item.article_id;
    card.dataset.productType = item.product_type;
    card.dataset.colour = item.colour;
    card.dataset.productGroup = item.product_group;
    card.dataset.price = item.price === null ? "" : String(item.price);

    const figure = document.createElement("div");
    figure.className = "photo";
    if (item.image_url) {
      const img = document.createElement("img");
      img.src = API + item.image_url;
      img.alt = `${item.name}, ${item.colour} ${item.product_type}`;
      img.loading = "lazy";
      img.setAttribute("data-testid", "card-image");
      figure.append(img);
    } else {
      figure.textContent = "no photo";
      figure.classList.add("missing");
    }
    const name = document.createElement("h3");
    name.textContent = item.name;
    const meta = document.createElement("p");
    meta.className = "meta";
    meta.textContent = `${item.product_type} · ${item.colour}`;
    const price = document.createElement("p");
    price.className = "price";
    price.textContent = formatPrice(item.price);
    card.append(figure, name, meta, price);
    card.tabIndex = 0;
    card.addEventListener("click", () => openDetail(item));
    card.addEventListener("keydown", (e) => { if (e.key === "Enter") openDetail(item); });
    session.names[item.article_id] = item.name;
    grid.append(card);
  }
  if (!items.length) {
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.setAttribute("data-testid", "empty");
    empty.textContent = "Nothing matches. Try removing a filter.";
    grid.append(empty);
  }
}

function renderPager() {
  const pages = Math.max(1, Math.ceil(state.total / PAGE_SIZE));
  const cap = state.view === "feed" ? Infinity : Math.ceil(SEARCH_MAX / PAGE_SIZE);
  $("page-label").textContent = state.total ? `Page ${state.page + 1} of ${Math.min(pages, cap)}` : "";
  $("prev-page").disabled = state.page === 0;
  $("next-page").disabled = state.page + 1 >= Math.min(pages, cap);
}

function renderStatus(body) {
  const parts = [];
  if (body.source) parts.push(`source: ${body.source}`);
  if (body.mode && state.view !== "feed") parts.push(`mode: ${body.mode}`);
  parts.push(body.cached ? "cached" : "fresh");
  if (body.model_versions) {
    const versions = Object.entries(body.model_versions).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`);
    if (versions.length) parts.push(versions.join(", "));
  }
  $("status").textContent = parts.join(" · ");
}

// --- loading results ------------------------------------------------------------------------

async function load() {
  const seq = ++requestSeq;
  showError("");
  setLoading(true);
  $("clear-search").hidden = state.view === "feed";
  try {
    let body;
    const offset = state.page * PAGE_SIZE;
    if (state.view === "feed") {
      if (!state.customer && !session.events) { setLoading(false); return; }
      const params = new URLSearchParams({ k: PAGE_SIZE, offset });
      if (state.customer) params.set("customer_id", state.customer);
      else params.set("session_id", session.id);
      for (const [column, values] of Object.entries(activeFilters())) {
        for (const v of [].concat(values)) params.append(column, v);
      }
      $("results-title").textContent = state.customer ? `Recommended for ${state.customer.slice(0, 10)}…`
        : "Recommended for this visit";
      body = await api(`/recommend?${params}`);
    } else if (state.view === "text") {
      $("results-title").textContent = `Results for “${state.query}”`;
      const payload = { query: state.query, k: PAGE_SIZE, offset, filters: activeFilters(), mode: state.searchMode };
      if (state.customer) payload.customer_id = state.customer;
      body = await api("/search", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload),
      });
    } else {
      $("results-title").textContent = "Similar to your photo";
      const form = new FormData();
      form.append("file", state.image, state.image.name || "photo.jpg");
      form.append("k", String(PAGE_SIZE));
      form.append("offset", String(offset));
      form.append("filters", JSON.stringify(activeFilters()));
      if (state.customer) form.append("customer_id", state.customer);
      body = await api("/search", { method: "POST", body: form });
    }
    if (seq !== requestSeq) return;
    state.total = body.total;
    renderCards(body.items);
    renderStatus(body);
    renderBecause(state.view === "feed" ? body.session : null);
    showNotice(body);
    renderPager();
  } catch (error) {
    if (seq !== requestSeq) return;
    $("grid").replaceChildren();
    showNotice(null);
    state.total = 0;
    renderPager();
    showError(error.status === 503 && state.view !== "feed"
      ? `Search is unavailable right now (${error.message}). Clear the search to see the feed.`
      : `Could not load results: ${error.message}`);
  } finally {
    if (seq === requestSeq) setLoading(false);
  }
}

function restart() { state.page = 0; load(); }

// --- customers ---------------------------------------------------------------------------------

function renderCustomerList(customers) {
  const list = $("customer-list");
  list.replaceChildren();
  for (const c of customers) {
    const li = document.createElement("li");
    li.setAttribute("role", "option");
    li.setAttribute("data-testid", "customer-option");
    li.dataset.customerId = c.customer_id;
    li.tabIndex = -1;
    const age = c.age === null ? "age unknown" : `age ${c.age}`;
    const id = document.createElement("code");
    id.textContent = c.customer_id.slice(0, 16) + "…";
    const info = document.createElement("span");
    info.textContent = ` ${age} · ${c.purchases} purchases`;
    li.append(id, info);
    li.addEventListener("mousedown", (e) => { e.preventDefault(); chooseCustomer(c.customer_id); });
    li.addEventListener("keydown", (e) => { if (e.key === "Enter") chooseCustomer(c.customer_id); });
    list.append(li);
  }
  if (!customers.length) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = "No customer with that id prefix";
    list.append(li);
  }
  list.hidden = false;
  $("customer-input").setAttribute("aria-expanded", "true");
}

const lookupCustomers = debounce(async (prefix) => {
  const clean = prefix.trim().toLowerCase();
  if (clean && !/^[0-9a-f]{1,64}$/.test(clean)) {
    renderCustomerList([]);
    return;
  }
  try {
    const params = new URLSearchParams({ limit: 10 });
    if (clean) params.set("prefix", clean);
    const seq = ++customerSeq;
    const customers = await api(`/customers?${params}`);
    // A customer was chosen (or another lookup started) meanwhile: keep the list closed.
    if (seq !== customerSeq) return;
    renderCustomerList(customers);
  } catch (error) {
    showError(`Could not look up customers: ${error.message}`);
  }
}, 150);

function chooseCustomer(customerId) {
  lookupCustomers.cancel();
  renderBecause(null);
  customerSeq += 1;
  state.customer = customerId;
  $("customer-input").value = customerId;
  $("customer-list").hidden = true;
  $("customer-input").setAttribute("aria-expanded", "false");
  if (state.view === "feed") restart();
  else load(); // a search stays; it is now personalised for this customer
}

// --- search -------------------------------------------------------------------------------------

function searchText(event) {
  event.preventDefault();
  const query = $("search-input").value.trim();
  if (!query) return;
  state.view = "text";
  state.query = query;
  state.image = null;
  $("image-input").value = "";
  $("image-preview").hidden = true;
  state.searchMode = $("search-mode").value;
  restart();
}

function searchImage(file) {
  if (!file) return;
  if (!/^image\/(jpeg|png|webp)$/.test(file.type)) {
    showError("Please choose a JPEG, PNG or WebP photo.");
    return;
  }
  state.view = "image";
  state.image = file;
  $("search-input").value = "";  // one search at a time: the photo replaces the text query
  const preview = $("image-preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  restart();
}

function clearSearch() {
  state.view = "feed";
  state.query = "";
  state.image = null;
  $("search-input").value = "";
  $("image-input").value = "";
  $("image-preview").hidden = true;
  $("status").textContent = "";
  if (state.customer || session.events) restart();
  else {
    $("grid").replaceChildren();
    $("results-title").textContent = "Pick a customer to see their feed";
    $("clear-search").hidden = true;
    state.total = 0;
    renderPager();
  }
}

// --- facets -----------------------------------------------------------------------------------

async function loadFacets() {
  try {
    const body = await api("/facets");
    const box = $("facets");
    box.replaceChildren();
    for (const [column, label] of FACET_COLUMNS) {
      const values = body.facets[column] || [];
      if (!values.length) continue;
      const wrap = document.createElement("label");
      wrap.className = "facet";
      wrap.textContent = label;
      const select = document.createElement("select");
      select.setAttribute("data-testid", `facet-${column}`);
      select.dataset.column = column;
      select.append(new Option("Any", ""));
      for (const v of values.slice(0, 80)) select.append(new Option(`${v.value} (${v.count})`, v.value));
      select.addEventListener("change", () => { state.filters[column] = select.value; restart(); });
      wrap.append(select);
      box.append(wrap);
    }
    if (body.price && body.price.max !== null) {
      $("price-min").placeholder = body.price.min.toFixed(3);
      $("price-max").placeholder = body.price.max.toFixed(3);
    }
  } catch (error) {
    showError(`Could not load filters: ${error.message}`);
  }
}

function readPrice(id) {
  const raw = $(id).value;
  const value = raw === "" ? null : Number(raw);
  return value === null || Number.isNaN(value) || value < 0 ? null : value;
}

function clearFilters() {
  state.filters = {};
  state.priceMin = state.priceMax = null;
  for (const select of document.querySelectorAll("#facets select")) select.value = "";
  $("price-min").value = $("price-max").value = "";
  restart();
}

// --- the session: clicks, the detail view, the cart -------------------------------------------
// Events go to POST /events as the chosen customer, or as this visit's anonymous session (a
// cookie); the next feed is seeded by them, and says so ("because you viewed ...").

const session = {
  id: sessionCookie(),
  events: 0,          // events this page sent (an anonymous visit gets a feed once there is one)
  names: {},          // article id -> name, from the cards shown
  detailItem: null,
  changed: false,     // an event since the feed was last loaded
};

function sessionCookie() {
  const found = document.cookie.split("; ").find((c) => c.startsWith("hm_session="));
  if (found) return found.slice("hm_session=".length);
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  const id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  document.cookie = `hm_session=${id}; path=/; max-age=${7 * 86400}; SameSite=Lax`;
  return id;
}

async function recordEvent(type, articleId) {
  const owner = state.customer ? { customer_id: state.customer } : { session_id: session.id };
  try {
    await api("/events", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ events: [{ ...owner, article_id: articleId, type, ts: Date.now() / 1000 }] }),
    });
    session.events += 1;
    session.changed = true;
  } catch (error) {
    showError(`Could not record the ${type}: ${error.message}`);
  }
}

async function openDetail(item) {
  session.detailItem = item;
  $("detail-name").textContent = item.name;
  $("detail-meta").textContent = `${item.product_type} · ${item.colour}`;
  $("detail-price").textContent = formatPrice(item.price);
  $("detail-description").textContent = "";
  const img = $("detail-image");
  img.hidden = !item.image_url;
  if (item.image_url) { img.src = API + item.image_url; img.alt = item.name; }
  $("add-to-cart").disabled = false;
  $("add-to-cart").textContent = "Add to cart";
  $("detail").showModal();
  await recordEvent("click", item.article_id);
  try {
    const detail = await api(`/articles/${item.article_id}`);
    if (session.detailItem === item) $("detail-description").textContent = detail.description || "";
  } catch (_) { /* the card's fields are enough */ }
}

async function addToCart() {
  const item = session.detailItem;
  if (!item) return;
  $("add-to-cart").disabled = true;
  await recordEvent("cart", item.article_id);
  $("add-to-cart").textContent = "In your cart";
}

function closeDetail() {
  if ($("detail").open) $("detail").close();
}

function renderBecause(summary) {
  const box = $("because");
  if (!summary || !summary.because || !summary.because.length) { box.hidden = true; box.textContent = ""; return; }
  const names = summary.because.map((a) => session.names[a] || a);
  const carted = summary.counts && summary.counts.cart ? " and carted" : "";
  box.textContent = `Because you viewed${carted}: ${names.join(", ")}`;
  box.hidden = false;
}

function wireDetail() {
  $("add-to-cart").addEventListener("click", addToCart);
  $("detail-close").addEventListener("click", closeDetail);
  // Closing the detail shows the feed the session changed (search results stay as they are).
  $("detail").addEventListener("close", () => {
    session.detailItem = null;
    if (session.changed && state.view === "feed") { session.changed = false; restart(); }
  });
}

// --- wiring -------------------------------------------------------------------------------------

function wire() {
  wireDetail();
  const input = $("customer-input");
  input.addEventListener("input", () => lookupCustomers(input.value));
  input.addEventListener("focus", () => {
    // Focusing the box with the chosen customer in it offers the sample again.
    lookupCustomers(input.value.trim().toLowerCase() === state.customer ? "" : input.value);
  });
  input.addEventListener("blur", () => setTimeout(() => { $("customer-list").hidden = true; }, 150));
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      const first = document.querySelector("#customer-list [data-customer-id]");
      const typed = input.value.trim().toLowerCase();
      if (/^[0-9a-f]{64}$/.test(typed)) chooseCustomer(typed);
      else if (first) chooseCustomer(first.dataset.customerId);
    } else if (e.key === "ArrowDown") {
      const first = document.querySelector("#customer-list [data-customer-id]");
      if (first) first.focus();
    } else if (e.key === "Escape") {
      $("customer-list").hidden = true;
    }
  });

  $("search-form").addEventListener("submit", searchText);
  $("clear-search").addEventListener("click", clearSearch);
  $("image-input").addEventListener("change", (e) => searchImage(e.target.files[0]));

  const zone = $("drop-zone");
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.remove("over"); });
  }
  zone.addEventListener("drop", (e) => searchImage(e.dataTransfer.files[0]));
  // A photo dropped anywhere else should not make the browser navigate away.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());

  for (const id of ["price-min", "price-max"]) {
    $(id).addEventListener("change", () => {
      state.priceMin = readPrice("price-min");
      state.priceMax = readPrice("price-max");
      restart();
    });
  }
  $("clear-filters").addEventListener("click", clearFilters);
  $("prev-page").addEventListener("click", () => { if (state.page > 0) { state.page -= 1; load(); } });
  $("next-page").addEventListener("click", () => { state.page += 1; load(); });
}

// Phones: filters start folded so the feed is on the first screen.
if (window.matchMedia("(max-width: 799px)").matches) $("filters-panel").open = false;

wire();
loadFacets();
pollStatus();
