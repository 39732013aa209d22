// The manager console: plain JavaScript over the service's public API, no build step and no
// library. Live changes come from the manager feed GET /events (Server-Sent Events), the rest
// from the ordinary endpoints; nothing is polled.
"use strict";

// sessionStorage: the token lives as long as this tab and is sent only as the bearer header.
// Never localStorage (it would outlive the tab), a cookie (other sites could make the browser
// send it) or the URL (it would end up in history and logs).
const TOKEN_KEY = "order-processor.manager-token";
const RECENT_ORDERS = 50;
const RECONNECT_FIRST_MS = 1000;
const RECONNECT_MAX_MS = 30000;

const $ = (id) => document.getElementById(id);
const money = new Intl.NumberFormat("en");

const orders = new Map(); // order_id -> the order as GET /orders/{id} returns it
let feed = null; // AbortController of the running GET /events loop

// -- the API ------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

// The API's errors are {"error": ..., "detail": ...} (app/api/errors.py): the detail is shown
// exactly as the API words it; only a reply without one (a proxy's page) gets the status line.
async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: fall through to the status line
  }
  const detail =
    body && typeof body.detail === "string"
      ? body.detail
      : `HTTP ${response.status} ${response.statusText}`.trim();
  return new ApiError(response.status, detail);
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  // On every call, reads too: with CUSTOMER_AUTH=jwt the order routes want a token, and the
  // manager's (the static one or a manager JWT) is what lets the console see every order.
  if (token()) headers.Authorization = `Bearer ${token()}`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  if (!response.ok) throw await failure(response);
  return response.json();
}

// -- Server-Sent Events over fetch ----------------------------------------------------------
// EventSource cannot send an Authorization header, and the token must not go in the URL, so
// the stream is read with fetch() and parsed here (the text/event-stream format of the HTML
// standard: fields up to a blank line make one event; lines starting with ":" are comments).

async function* serverSentEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { type: "message", data: [], id: null, retry: null };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      // A "\r" at the very end may be the first half of a "\r\n" split across two chunks: it
      // ends no line until the next chunk shows what follows it, or the stream ends.
      buffer += done ? "" : value;
      const lines = buffer.split(done ? /\r\n|\n|\r/ : /\r\n|\n|\r(?!$)/);
      buffer = lines.pop(); // the unfinished line (at the end, what never ended is dropped)
      for (const line of lines) {
        if (line === "") {
          if (event.data.length > 0) yield { ...event, data: event.data.join("\n") };
          event = { type: "message", data: [], id: event.id, retry: null };
          continue;
        }
        if (line.startsWith(":")) continue; // keep-alive ping
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        let field = colon < 0 ? "" : line.slice(colon + 1);
        if (field.startsWith(" ")) field = field.slice(1);
        if (name === "event") event.type = field;
        else if (name === "data") event.data.push(field);
        else if (name === "id" && !field.includes("\0")) event.id = field;
        else if (name === "retry" && /^\d+$/.test(field)) event.retry = Number(field);
      }
      if (done) return;
    }
  } finally {
    // However the reading stops (the end, a break, an error), the connection is let go.
    reader.cancel().catch(() => {});
  }
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

// The manager feed, reconnecting with a growing pause. /events carries only changes from the
// moment it is connected, so each (re)connection reloads the lists first: nothing that changed
// while disconnected is missed. A 401 ends the loop: a wrong token does not get better.
async function followFeed(signal) {
  let delay = RECONNECT_FIRST_MS;
  let lastEventId = null;
  while (!signal.aborted) {
    let response = null;
    try {
      const headers = { Accept: "text/event-stream", Authorization: `Bearer ${token()}` };
      if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
      response = await fetch("/events", { headers, signal, cache: "no-store" });
      if (!response.ok) throw await failure(response);
      await Promise.all([loadOrders(), refreshInventory()]);
      setConnection("Live");
      if ($("error").dataset.fromFeed) clearError(); // what the feed reported is over
      delay = RECONNECT_FIRST_MS;
      for await (const event of serverSentEvents(response.body)) {
        if (event.id !== null) lastEventId = event.id;
        if (event.retry !== null) delay = event.retry;
        if (event.type === "step" || event.type === "finished") {
          remember(JSON.parse(event.data));
          render();
          refreshInventory(); // an order's step moves stock: reserved, sold or released
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError) {
        showError(error.message, { fromFeed: true });
        if (error.status === 401) {
          signOut();
          return;
        }
      }
    } finally {
      // A stream that failed before it was read (the lists did not load) is closed here, so
      // retries never pile up open connections (a browser allows six per host).
      if (response && response.body && !response.bodyUsed) response.body.cancel().catch(() => {});
    }
    if (signal.aborted) return;
    setConnection(`Reconnecting in ${Math.round(delay / 1000)} s…`);
    await pause(delay, signal);
    delay = Math.min(delay * 2, RECONNECT_MAX_MS);
  }
}

// -- state ----------------------------------------------------------------------------------

// The feed, the list and the answers to the console's own actions can deliver one order's
// states out of order: a finished order stays finished, otherwise the later update wins.
function remember(order) {
  const known = orders.get(order.order_id);
  if (known) {
    if (known.result !== null && order.result === null) return;
    const finishing = known.result === null && order.result !== null;
    if (!finishing && Date.parse(order.updated_at) < Date.parse(known.updated_at)) return;
  }
  orders.set(order.order_id, order);
}

async function loadOrders() {
  const page = await api(`/orders?limit=${RECENT_ORDERS}`);
  page.orders.forEach(remember);
  render();
}

// At most one GET /inventory in flight; changes meanwhile ask for one more after it.
let inventoryLoading = null;
let inventoryStale = false;

function refreshInventory() {
  if (inventoryLoading) {
    inventoryStale = true;
    return inventoryLoading;
  }
  inventoryLoading = (async () => {
    try {
      do {
        inventoryStale = false;
        renderInventory((await api("/inventory")).items);
      } while (inventoryStale);
    } catch (error) {
      if (error instanceof ApiError) showError(error.message);
    } finally {
      inventoryLoading = null;
    }
  })();
  return inventoryLoading;
}

// -- rendering ------------------------------------------------------------------------------
// Elements are keyed by order id and updated in place, so a button keeps its focus while the
// lists change around it. Text goes in with textContent only: no order field becomes markup.

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

function reconcile(container, items, key, create, update) {
  const existing = new Map([...container.children].map((child) => [child.dataset.key, child]));
  items.forEach((item, index) => {
    const id = key(item);
    let node = existing.get(id);
    existing.delete(id);
    if (!node) {
      node = create(item);
      node.dataset.key = id;
    }
    update(node, item);
    if (container.children[index] !== node) container.insertBefore(node, container.children[index] || null);
  });
  existing.forEach((node) => node.remove());
}

function outcome(order) {
  if (order.result) return order.result.processed ? "processed" : order.result.reason || "not processed";
  if (order.decision) return `${order.decision} by ${order.decided_by}`;
  return "";
}

function awaitingDecision(order) {
  return order.result === null && order.decision === null && order.step === "awaiting_approval";
}

function render() {
  const newestFirst = [...orders.values()].sort(
    (a, b) => Date.parse(b.created_at) - Date.parse(a.created_at) || b.order_id.localeCompare(a.order_id),
  );
  const recent = newestFirst.slice(0, RECENT_ORDERS);
  // Forget what fell off the list, unless it still waits for a decision.
  for (const order of newestFirst.slice(RECENT_ORDERS)) {
    if (!awaitingDecision(order)) orders.delete(order.order_id);
  }
  const waiting = newestFirst.filter(awaitingDecision).reverse(); // oldest first: first come
  $("awaiting-empty").hidden = waiting.length > 0;
  reconcile($("awaiting"), waiting, (order) => order.order_id, awaitingCard, () => {});
  reconcile(
    $("orders"),
    recent,
    (order) => order.order_id,
    orderRow,
    updateOrderRow,
  );
}

// Class names find the cells; labels name them when a phone shows each row as a card.
const ORDER_CELLS = [
  ["id", "Order"],
  ["item", "Item"],
  ["quantity number", "Qty"],
  ["total number", "Total"],
  ["status", "Status"],
  ["step", "Step"],
  ["outcome", "Outcome"],
];

function orderRow() {
  return element("tr", {}, ...ORDER_CELLS.map(([name, label]) => element("td", { class: name, "data-label": label })));
}

function updateOrderRow(row, order) {
  row.dataset.orderId = order.order_id;
  const cells = Object.fromEntries([...row.children].map((cell) => [cell.className.split(" ")[0], cell]));
  cells.id.textContent = order.order_id;
  cells.item.textContent = order.item;
  cells.quantity.textContent = String(order.quantity);
  cells.total.textContent = money.format(order.total_cost);
  cells.status.textContent = order.status;
  cells.status.className = `status status-${order.status}`;
  cells.step.textContent = order.step || "";
  cells.outcome.textContent = outcome(order);
}

function awaitingCard(order) {
  const approve = element("button", { type: "button", class: "approve", "aria-label": `Approve ${order.order_id}` }, "Approve");
  const reject = element("button", { type: "button", class: "reject", "aria-label": `Reject ${order.order_id}` }, "Reject");
  approve.addEventListener("click", () => decide(order.order_id, true, card));
  reject.addEventListener("click", () => decide(order.order_id, false, card));
  const what = element(
    "span",
    { class: "what" },
    element("strong", {}, order.order_id),
    ` · ${order.quantity} ${order.item} · ${money.format(order.total_cost)}`,
  );
  const card = element("li", { "data-order-id": order.order_id }, what, approve, reject);
  return card;
}

async function decide(orderId, approved, card) {
  const buttons = [...card.querySelectorAll("button")];
  const focused = buttons.includes(document.activeElement);
  // Where focus goes once the card is gone: the next waiting order, or the section heading.
  const next = card.nextElementSibling || card.previousElementSibling;
  buttons.forEach((button) => (button.disabled = true));
  clearError();
  try {
    remember(await api(`/orders/${encodeURIComponent(orderId)}/approve`, { method: "POST", body: { approved } }));
    render();
    if (focused) (next && next.isConnected ? next.querySelector("button") : $("awaiting-title")).focus();
  } catch (error) {
    showError(error.message);
    buttons.forEach((button) => (button.disabled = false));
  }
}

function renderInventory(items) {
  reconcile(
    $("inventory"),
    items,
    (item) => item.item,
    () => element("tr", {}, ...["item", "available number", "reserved number", "price number"].map((name) => element("td", { class: name }))),
    (row, item) => {
      row.dataset.item = item.item;
      const [name, available, reserved, price] = row.children;
      name.textContent = item.item;
      available.textContent = String(item.quantity);
      reserved.textContent = String(item.reserved);
      price.textContent = money.format(item.per_item_cost);
    },
  );
  for (const select of [$("order-item"), $("restock-item")]) {
    const chosen = select.value;
    reconcile(select, items, (item) => item.item, (item) => element("option", { value: item.item }, item.item), () => {});
    if (chosen) select.value = chosen;
  }
}

function setConnection(text) {
  $("connection").textContent = text;
}

function showError(text, { fromFeed = false } = {}) {
  $("error").textContent = text;
  $("error").hidden = false;
  if (fromFeed) $("error").dataset.fromFeed = "yes";
  else delete $("error").dataset.fromFeed;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
  delete $("error").dataset.fromFeed;
}

// -- the forms ------------------------------------------------------------------------------

// Submit buttons are disabled while their request runs, so a double press sends one request.
function onSubmit(form, action) {
  form.addEventListener("submit", async (submitted) => {
    submitted.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    clearError();
    try {
      await action(new FormData(form));
    } catch (error) {
      showError(error.message);
    } finally {
      button.disabled = false;
    }
  });
}

function signIn() {
  $("sign-in").hidden = true;
  $("console").hidden = false;
  $("forget-token").hidden = false;
  setConnection("Connecting…");
  feed = new AbortController();
  followFeed(feed.signal);
}

function signOut() {
  if (feed) feed.abort();
  feed = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $("console").hidden = true;
  $("forget-token").hidden = true;
  $("sign-in").hidden = false;
  setConnection("Not connected");
  $("token").focus();
}

function start() {
  $("token-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    clearError();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    signIn();
    $("awaiting-title").focus(); // the form just hid itself: keep keyboard focus in the page
  });
  $("forget-token").addEventListener("click", () => {
    clearError();
    signOut();
  });

  onSubmit($("order-form"), async (fields) => {
    const body = { item: fields.get("item"), quantity: Number(fields.get("quantity")) };
    const orderId = String(fields.get("order_id") || "").trim();
    if (orderId) body.order_id = orderId;
    const order = await api("/orders", { method: "POST", body });
    remember(order);
    render();
    $("order-id").value = "";
    $("order-result").textContent = `Order ${order.order_id} accepted (${order.status}).`;
  });

  onSubmit($("restock-form"), async (fields) => {
    const body = { item: fields.get("item"), quantity: Number(fields.get("quantity")) };
    renderInventory((await api("/inventory/restock", { method: "POST", body })).items);
  });

  $("awaiting-title").tabIndex = -1; // a focus target once the last waiting order is decided
  if (token()) signIn();
  else $("token").focus();
}

start();
