/**
 * `npm run docs:check`: checks every link of the built docs site (`npm run docs:build` first) with
 * linkinator, offline: it serves `site/.vitepress/dist/` on loopback, crawls every page, checks internal
 * links and their `#fragments`, and lists external links without fetching them (no network here, and a
 * third-party outage must not fail the build). Exits 1 on a broken link.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LinkChecker, LinkState } from 'linkinator';

export const SITE_DIST = join(import.meta.dir, '..', 'site', '.vitepress', 'dist');

export interface LinkReport {
  /** Internal URLs checked (pages, assets, fragments). */
  checked: number;
  broken: { url: string; parent: string | undefined; status: number | undefined }[];
  /** External links found, not fetched. */
  external: string[];
}

const isLocal = (link: string) => {
  try {
    const url = new URL(link);
    return url.hostname === 'localhost' || url.hostname === '127.0.0.1' || url.hostname === '[::1]';
  } catch {
    return true;
  }
};

export async function checkSiteLinks(dist = SITE_DIST): Promise<LinkReport> {
  if (!existsSync(join(dist, 'index.html'))) {
    throw new Error(`${dist}/index.html is missing: run npm run docs:build first`);
  }
  const external = new Set<string>();
  const checker = new LinkChecker();
  const result = await checker.check({
    path: dist,
    recurse: true,
    checkFragments: true,
    concurrency: 8,
    timeout: 10_000,
    linksToSkip: async (link) => {
      if (isLocal(link)) return false;
      if (/^https?:/.test(link)) external.add(link);
      return true;
    },
  });
  const broken = result.links
    .filter((link) => link.state === LinkState.BROKEN)
    .map((link) => ({ url: link.url, parent: link.parent, status: link.status }));
  const checked = result.links.filter((link) => link.state !== LinkState.SKIPPED).length;
  return { checked, broken, external: [...external].sort() };
}

if (import.meta.main) {
  const report = await checkSiteLinks();
  console.log(`docs:check: ${report.checked} internal links checked`);
  console.log(`docs:check: ${report.external.length} external links (listed, not fetched):`);
  for (const link of report.external) console.log(`  ${link}`);
  if (report.broken.length > 0) {
    console.error(`docs:check: ${report.broken.length} broken links:`);
    for (const link of report.broken) {
      console.error(`  ${link.url} (status ${link.status ?? '-'}) on ${link.parent ?? '?'}`);
    }
    process.exit(1);
  }
  console.log('docs:check: no broken links');
}
