// Drives the gateway's seat-map page in headless Chromium for
// tests/tests/gateway_page.rs, which talks to it line by line:
//   node page.mjs URL SCREENSHOT.png
//   → prints `loaded <tiles JSON>` once the page has drawn the venue;
//   ← reads a line (the test has sold seats through the API meanwhile);
//   → prints `live <{rendered, api} JSON>` once what the page shows equals
//     the API's numbers (or after 20 s), then books through the page's
//     form and prints `booked <status>`, then `grid <seats reserved>` once
//     the form's subsection's grid shows them; saves a screenshot and exits.
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const [url, screenshot] = process.argv.slice(2);
// The iterator buffers a line that arrives before it is asked for.
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const nextLine = () => lines.next();

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  page.on("pageerror", (e) => console.error(`page error: ${e}`));
  await page.goto(url);
  await page.waitForSelector("body[data-ready=true]", { timeout: 20000 });
  const tiles = () => page.$$eval(".tile", (ts) => ts.map((t) => [t.dataset.section, Number(t.dataset.subsection), Number(t.dataset.available)]));
  const api = () => page.evaluate(async () => {
    const about = await (await fetch("/about")).json();
    const seats = await (await fetch(`/events/${about.event_id}/seats`)).json();
    return seats.map((s) => [s.section, s.subsection, s.available]);
  });
  console.log(`loaded ${JSON.stringify(await tiles())}`);

  await nextLine();
  let rendered, expected;
  for (let i = 0; i < 200; i++) {
    [rendered, expected] = [await tiles(), await api()];
    if (JSON.stringify(rendered) === JSON.stringify(expected)) break;
    await page.waitForTimeout(100);
  }
  console.log(`live ${JSON.stringify({ rendered, api: expected, indicator: await page.getAttribute("#live", "class") })}`);

  // A booking through the form: a subsection, two seats, best available.
  await page.selectOption("#subsection", "A-3");
  await page.selectOption("#quantity", "2");
  await page.click("button[type=submit]");
  const status = await page.waitForSelector("#booking .status[data-status=pending_payment]", { timeout: 30000 })
    .then((s) => s.getAttribute("data-status"))
    .catch(async () => `not reserved: ${await page.textContent("#booking")}`);
  console.log(`booked ${status}`);
  // The chosen subsection's grid follows its version: the two seats show reserved.
  const reserved = await page.waitForFunction(() => document.querySelectorAll("#grid .seat.reserved").length >= 2, null, { timeout: 10000 })
    .then(() => page.$$eval("#grid .seat.reserved", (s) => s.length))
    .catch(() => 0);
  console.log(`grid ${reserved}`);
  await page.screenshot({ path: screenshot });
} finally {
  await browser.close();
}
