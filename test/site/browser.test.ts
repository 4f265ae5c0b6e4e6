/**
 * The docs site as a reader meets it: built with VitePress, served on loopback, opened in Debian's
 * headless Chromium through playwright-core. It opens the home page, follows the quickstart links by
 * clicking them, visits every page, and fails on a broken link or anchor, a failed or external request,
 * or any console error. At a laptop's 1280 × 800 every column of every table must lie on screen, and
 * no page may show a Markdown escape (`\|`) as text.
 *
 * Needs /usr/bin/chromium (`apt-get install -y chromium`; .ci/run installs it). Without it the suite
 * fails in CI and is skipped, with a message, elsewhere.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

const REPO_ROOT = join(import.meta.dir, '..', '..');
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const haveChromium = existsSync(CHROMIUM);
const inCi = Boolean(process.env.CI);
if (!haveChromium && !inCi) {
  console.warn(
    `site-browser.test.ts: SKIPPED — ${CHROMIUM} is not installed (apt-get install -y chromium). In CI this fails.`,
  );
}
const suite = haveChromium || inCi ? describe : describe.skip;

let work: string;
let dist: string;
let server: ReturnType<typeof Bun.serve>;
let context: BrowserContext;
let origin: string;

/** Problems seen by any page: console errors, page errors, failed, external or 4xx/5xx requests. */
const problems: string[] = [];

/** Builds the site from the current sources into a fresh directory, so the test never sees a stale build. */
async function buildSite(outDir: string): Promise<void> {
  const vitepress = join(REPO_ROOT, 'node_modules', '.bin', 'vitepress');
  const child = Bun.spawn([vitepress, 'build', 'site', '--outDir', outDir], {
    cwd: REPO_ROOT,
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const [code, out, err] = await Promise.all([
    child.exited,
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  if (code !== 0) throw new Error(`vitepress build failed (${code}):\n${out}\n${err}`);
}

/** A static file server for the build output, resolving `/x` to `x.html` as a static host would. */
function serve(root: string) {
  const file = (path: string) => {
    const full = normalize(join(root, path));
    if (!full.startsWith(root)) return undefined;
    return existsSync(full) && statSync(full).isFile() ? full : undefined;
  };
  return Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch(request) {
      let path = decodeURIComponent(new URL(request.url).pathname);
      if (path.endsWith('/')) path += 'index.html';
      const found = file(path) ?? file(`${path}.html`);
      if (found) return new Response(Bun.file(found));
      return new Response(Bun.file(join(root, '404.html')), {
        status: 404,
        headers: { 'Content-Type': 'text/html' },
      });
    },
  });
}

async function newPage(): Promise<Page> {
  const page = await context.newPage();
  const where = () => new URL(page.url()).pathname;
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error on ${where()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error on ${where()}: ${error.message}`));
  page.on('requestfailed', (request) => {
    const error = request.failure()?.errorText ?? '';
    // VitePress prefetches the pages a page links to; leaving the page cancels those fetches. A
    // cancelled request is not a failure (a missing file shows up as a 404 response instead).
    if (error === 'net::ERR_ABORTED') return;
    problems.push(`request failed on ${where()}: ${request.url()} (${error})`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400)
      problems.push(`HTTP ${response.status()} for ${response.url()} on ${where()}`);
  });
  return page;
}

/** Every link on the page, resolved, with the text a reader sees. */
const linksOf = (page: Page, selector = 'a[href]') =>
  page.$$eval(selector, (anchors) =>
    anchors.map((a) => ({
      href: (a as unknown as { href: string }).href,
      text: a.textContent?.trim() ?? '',
    })),
  );

/** The ids on the page, for checking `#fragment` links. */
const idsOf = (page: Page) => page.$$eval('[id]', (nodes) => nodes.map((node) => node.id));

const pageKey = (url: URL) => url.pathname.replace(/\.html$/, '').replace(/\/index$/, '/');

suite('docs site in headless Chromium', () => {
  beforeAll(async () => {
    if (!haveChromium) {
      throw new Error(`${CHROMIUM} is not installed: CI must install it (apt-get install -y chromium)`);
    }
    work = mkdtempSync(join(tmpdir(), 'tsgw-site-'));
    dist = join(work, 'dist');
    await buildSite(dist);
    server = serve(dist);
    origin = `http://127.0.0.1:${server.port}`;
    context = await chromium.launchPersistentContext(join(work, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 },
    });
    // The site must load nothing from outside: every request off this origin is a problem.
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(origin) || url.startsWith('data:')) return route.continue();
      problems.push(`external request: ${url}`);
      return route.abort();
    });
  }, 180_000);

  afterAll(async () => {
    await context?.close();
    server?.stop(true);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('the home page shows the overview and the traffic diagram', async () => {
    const page = await newPage();
    await page.goto(`${origin}/`);
    await expect(page.locator('h1').first().textContent()).resolves.toContain('tailscale-gateway');
    await expect(page.locator('pre', { hasText: 'tailnet clients' }).count()).resolves.toBe(1);
    await expect(page.locator('h2', { hasText: 'What works today' }).count()).resolves.toBe(1);
    await page.close();
    expect(problems).toEqual([]);
  }, 60_000);

  test('follows the quickstart links from the home page', async () => {
    const page = await newPage();
    await page.goto(`${origin}/`);
    await page.locator('a.VPButton', { hasText: 'Quickstart' }).click();
    await page.waitForURL(/\/quickstart(\.html)?$/);
    await page.locator('h1', { hasText: 'Quickstart' }).waitFor();

    const quickstart = page.url();
    const links = await linksOf(page, '.vp-doc a[href]');
    expect(links.filter((link) => link.href.startsWith(origin)).length).toBeGreaterThanOrEqual(6);
    const followed: string[] = [];
    for (const [index, link] of links.entries()) {
      if (!link.href.startsWith(origin)) continue;
      await page.goto(quickstart);
      const anchor = page.locator('.vp-doc a[href]').nth(index);
      // Links inside inactive code-group tabs or collapsed blocks are not clickable for a reader either.
      if (!(await anchor.isVisible())) continue;
      const before = await page.locator('h1').first().textContent();
      await anchor.click();
      const target = new URL(link.href);
      await page.waitForURL((url) => pageKey(url) === pageKey(target));
      if (pageKey(target) !== pageKey(new URL(quickstart))) {
        // Client-side navigation: the URL changes before the new page renders.
        await page.waitForFunction(`document.querySelector('h1')?.textContent !== ${JSON.stringify(before)}`);
      }
      if (target.hash) {
        const id = decodeURIComponent(target.hash.slice(1));
        expect(await idsOf(page), `link ${index} "${link.text}" → ${link.href}`).toContain(id);
      }
      followed.push(`${pageKey(target)}${target.hash}`);
    }
    expect(followed.length).toBeGreaterThanOrEqual(6);
    expect(followed).toContain('/envoy-gateway#standalone-no-kubernetes');
    expect(followed).toContain('/troubleshooting');
    await page.close();
    expect(problems).toEqual([]);
  }, 120_000);

  test('at 1280 × 800 every column of every table lies inside the page, and no text shows `\\|`', async () => {
    const page = await newPage();
    await page.setViewportSize({ width: 1280, height: 800 });
    const pages = readdirSync(dist, { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.html') && file !== '404.html')
      .sort();
    const clipped: string[] = [];
    const escaped: string[] = [];
    let columns = 0;
    for (const file of pages) {
      await page.goto(`${origin}/${file}`);
      await page.locator('h1').first().waitFor();
      // The right edge of each header cell, against the viewport and the content column (a column past
      // the content column sits under the outline or is scrolled out of sight).
      const found = await page.$$eval('.vp-doc table', (tables) => {
        return tables.map((table) => {
          const doc = table.closest('.vp-doc')!.getBoundingClientRect();
          const box = table.getBoundingClientRect();
          const right = Math.min(
            (globalThis as unknown as { innerWidth: number }).innerWidth,
            doc.right,
            box.left + table.clientWidth,
          );
          const cells = [...(table.rows[0]?.cells ?? [])];
          return cells.map((cell) => ({
            name: cell.textContent?.trim() ?? '',
            right: cell.getBoundingClientRect().right,
            limit: right,
            table: [...cells].map((c) => c.textContent?.trim()).join('|'),
          }));
        });
      });
      for (const table of found) {
        columns += table.length;
        for (const cell of table)
          if (cell.right > cell.limit + 1)
            clipped.push(
              `${file}: column "${cell.name}" of [${cell.table}] ends at ${Math.round(cell.right)} px, past ${Math.round(cell.limit)} px`,
            );
      }
      // Prose, headings and table cells (inline code included); code blocks may hold a shell's `\|`.
      const texts = await page.$$eval('.vp-doc :is(p, li, td, th, h1, h2, h3, h4)', (nodes) =>
        nodes.map((node) => node.textContent ?? ''),
      );
      for (const line of texts) if (line.includes('\\|')) escaped.push(`${file}: ${line.trim()}`);
    }
    expect(columns).toBeGreaterThanOrEqual(100);
    expect(clipped).toEqual([]);
    expect(escaped).toEqual([]);
    await page.close();
    expect(problems).toEqual([]);
  }, 180_000);

  test('every page loads without errors, and every link and anchor resolves', async () => {
    const page = await newPage();
    const ids = new Map<string, string[]>();
    const links: { from: string; to: URL; text: string }[] = [];
    const queue = [`${origin}/`];
    while (queue.length > 0) {
      const url = new URL(queue.shift()!);
      const key = pageKey(url);
      if (ids.has(key)) continue;
      const response = await page.goto(url.toString());
      expect(response?.status(), `${url}`).toBe(200);
      await page.locator('h1').first().waitFor();
      ids.set(key, await idsOf(page));
      for (const link of await linksOf(page)) {
        const to = new URL(link.href);
        if (to.origin !== origin) continue;
        links.push({ from: key, to, text: link.text });
        if (!ids.has(pageKey(to))) queue.push(`${to.origin}${to.pathname}`);
      }
    }

    const broken = links
      .filter(({ to }) => {
        const target = ids.get(pageKey(to));
        if (!target) return true;
        return to.hash !== '' && !target.includes(decodeURIComponent(to.hash.slice(1)));
      })
      .map(({ from, to, text }) => `${from}: "${text}" → ${to.pathname}${to.hash}`);
    expect(broken).toEqual([]);

    // Every page of the build was reached by following links.
    const built = readdirSync(dist, { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.html') && file !== '404.html')
      .map((file) => pageKey(new URL(`/${file}`, origin)))
      .sort();
    expect([...ids.keys()].sort()).toEqual(built);
    expect(built.length).toBeGreaterThanOrEqual(15);
    await page.close();
    expect(problems).toEqual([]);
  }, 180_000);
});
