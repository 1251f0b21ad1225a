/**
 * The dashboard in a real browser: headless Chromium (Debian's package) driven by playwright-core.
 * Skipped, with a message saying so, only where /usr/bin/chromium is absent.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { type Browser, chromium } from "playwright-core";
import { createDashboard, type Dashboard } from "../../src/dashboard/index.js";
import { createService, type Service } from "../../src/index.js";
import { randomNamespace, startRedis, type TestRedis } from "../helpers/redis-server.js";

const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOT = ".tmp/dashboard.png";

describe("dashboard in headless Chromium", () => {
  const present = existsSync(CHROMIUM);
  let redis: TestRedis;
  let browser: Browser;
  let dash: Dashboard;
  let url: string;
  const services: Service[] = [];

  before(async () => {
    if (!present) return;
    redis = await startRedis();
    const ns = randomNamespace("ui");
    dash = createDashboard({
      redis: redis.url,
      namespace: ns,
      intervalMs: 200,
      queueStats: async () => [
        {
          service: "orders",
          queue: "emails",
          pending: 12,
          inFlight: 2,
          delayed: 1,
          dead: 1,
          processed: 311,
          failed: 4,
        },
      ],
    });
    ({ url } = await dash.listen({ port: 0 }));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  });
  after(async () => {
    if (!present) return;
    await browser?.close();
    await Promise.all(services.map((s) => s.stop()));
    await dash?.stop();
    await redis?.stop();
  });

  test("a service appears with its health, its logs stream in, and it goes when stopped", async (t) => {
    if (!present) {
      t.skip(`${CHROMIUM} is absent: install Debian's chromium package to run the browser test`);
      return;
    }
    const ns = dash.namespace;
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 }, colorScheme: "light" });
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    page.on("dialog", (d) => {
      pageErrors.push(`a dialog opened: ${d.message()}`);
      void d.dismiss();
    });
    await page.goto(url);
    await page.locator("#connection", { hasText: "Live" }).waitFor();
    // "Live" can show before the first snapshot is drawn (the namespace reads "…" until then).
    await page.locator("#namespace", { hasText: ns }).waitFor();
    assert.equal(await page.locator("#namespace").textContent(), ns);
    await page.locator("#instances tbody", { hasText: "no services registered" }).waitFor();

    const orders = createService({
      name: "orders",
      namespace: ns,
      redis: redis.url,
      version: "2.3.0",
      ip: "127.0.0.1",
      port: 8081,
      healthIntervalMs: 250,
    });
    const billing = createService({
      name: "billing",
      namespace: ns,
      redis: redis.url,
      healthIntervalMs: 250,
    });
    billing.healthCheck("payments-api", () => false);
    services.push(orders, billing);
    const t0 = performance.now();
    await Promise.all([orders.start(), billing.start()]);
    const row = page.locator(`#instances tr[data-instance="${orders.instanceId}"]`);
    await row.waitFor({ timeout: 5000 });
    const appearMs = performance.now() - t0;
    // Health: status cell, CPU, memory (MiB), in-flight. The row can show up (registry event) before
    // the instance's first health snapshot is read: wait for it.
    await row.locator("td", { hasText: "no health yet" }).waitFor({ state: "detached" });
    await row.locator("td.status-ok", { hasText: "ok" }).waitFor();
    const cells = await row.locator("td").allTextContents();
    assert.equal(cells[0], orders.instanceId.slice(0, 12));
    assert.equal(cells[1], "2.3.0");
    assert.match(cells[4] ?? "", /^\d+\.\d$/, "RSS in MiB");
    assert.equal(cells[10], "127.0.0.1:8081");

    await orders.registerRoutes(["[get]/v1/orders/:id", "[post]/v1/orders"]);
    await orders.config.set({ currency: "EUR" });
    await page.locator("#routes", { hasText: "[post]/v1/orders" }).waitFor();
    await page.locator('#config tr[data-service="orders"]').waitFor();
    assert.match((await page.locator("#queues").textContent()) ?? "", /emails\s*12\s*2\s*1\s*1\s*311\s*4/);

    // Logs: the page starts at "info"; a debug entry is filtered out, a hostile message is shown as text.
    await page.selectOption("#level", "info");
    await page.locator("#connection", { hasText: "Live" }).waitFor();
    orders.log.info("order 42 placed", { total: 99.5 });
    orders.log.warn('<img src=x onerror="alert(1)"> stock low');
    billing.log.error("card declined", { code: "insufficient_funds" });
    await page.locator("#logs tbody tr", { hasText: "order 42 placed" }).waitFor();
    await page.locator("#logs tbody tr", { hasText: "card declined" }).waitFor();
    const hostile = page.locator("#logs td.msg", { hasText: "stock low" });
    await hostile.waitFor();
    assert.equal(await hostile.textContent(), '<img src=x onerror="alert(1)"> stock low');
    assert.equal(await page.locator("#logs img").count(), 0, "no element was created from log data");

    // Changing the level to "error" keeps only errors.
    await page.selectOption("#level", "error");
    await page.locator("#logs tbody tr", { hasText: "card declined" }).waitFor();
    assert.equal(await page.locator("#logs tbody tr", { hasText: "order 42 placed" }).count(), 0);
    await page.selectOption("#level", "info");
    await page.locator("#logs tbody tr", { hasText: "order 42 placed" }).waitFor();

    const billingRow = page.locator(`#instances tr[data-instance="${billing.instanceId}"]`);
    await billingRow.locator("td.status-degraded", { hasText: "degraded" }).waitFor();
    await billingRow.locator(".check-bad", { hasText: "payments-api ✗" }).waitFor();

    await page.screenshot({ path: mkdirTmp(SCREENSHOT), fullPage: true });
    await page.emulateMedia({ colorScheme: "dark" });
    await page.screenshot({ path: ".tmp/dashboard-dark.png", fullPage: true });
    await page.emulateMedia({ colorScheme: "light" });

    const t1 = performance.now();
    await orders.stop();
    services.splice(services.indexOf(orders), 1);
    await row.waitFor({ state: "detached", timeout: 5000 });
    const goneMs = performance.now() - t1;
    await page.locator('#instances tr[data-service="orders"]', { hasText: "no live instance" }).waitFor();
    console.log(
      `browser: instance on the page ${appearMs.toFixed(0)} ms after start(), off it ${goneMs.toFixed(0)} ms after stop(); screenshot ${SCREENSHOT}`,
    );
    assert.deepEqual(pageErrors, []);
    await page.close();
    // The page's stream is gone with it: the collector stops.
    const deadline = Date.now() + 3000;
    while (dash.stats().clients > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(dash.stats().clients, 0);
  });
});

function mkdirTmp(path: string): string {
  mkdirSync(".tmp", { recursive: true });
  return path;
}
