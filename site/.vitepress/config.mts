/**
 * The docs site (VitePress). Pages are the Markdown files under site/; the parts generated from the
 * source live in site/generated/ (bun scripts/docs-generate.ts) and are included by the pages, so they
 * are not pages themselves. `npm run docs:build` writes site/.vitepress/dist/.
 */
import { defineConfig } from 'vitepress';

export const resources = [
  { text: 'TailscaleTailnet', link: '/resources/tailscale-tailnet' },
  { text: 'TailscaleEndpoints', link: '/resources/tailscale-endpoints' },
  { text: 'TailscaleGateway', link: '/resources/tailscale-gateway' },
  { text: 'TailscaleRoutePolicy', link: '/resources/tailscale-route-policy' },
  { text: 'TailscaleProxyGroup', link: '/resources/tailscale-proxy-group' },
];

/**
 * Pages whose tables need the full width: no right-hand outline (the "On this page" bar replaces it;
 * theme/custom.css). test/site/browser.test.ts fails on a page whose table columns do not fit at 1280 px.
 */
export const WIDE_PAGES = [
  'cli.md',
  'envoy-gateway.md',
  'observability.md',
  'troubleshooting.md',
  ...resources.map((resource) => `${resource.link.slice(1)}.md`),
];

export default defineConfig({
  title: 'tailscale-gateway',
  description: 'A Kubernetes operator joining Tailscale tailnets to Envoy Gateway',
  lang: 'en-US',
  srcExclude: ['generated/**'],
  // Fail the build on a link to a page that does not exist.
  ignoreDeadLinks: false,
  cleanUrls: false,
  transformPageData(pageData) {
    if (WIDE_PAGES.includes(pageData.relativePath)) {
      pageData.frontmatter.aside = false;
      pageData.frontmatter.pageClass = 'wide-tables';
    }
  },
  lastUpdated: false,
  themeConfig: {
    nav: [
      { text: 'Quickstart', link: '/quickstart' },
      { text: 'Concepts', link: '/concepts' },
      { text: 'Resources', link: '/resources/' },
      { text: 'CLI', link: '/cli' },
    ],
    sidebar: [
      {
        text: 'Introduction',
        items: [
          { text: 'Overview', link: '/' },
          { text: 'Quickstart', link: '/quickstart' },
          { text: 'Concepts', link: '/concepts' },
        ],
      },
      {
        text: 'Guides',
        items: [
          { text: 'Envoy Gateway configuration', link: '/envoy-gateway' },
          { text: 'Multi-cluster', link: '/multi-cluster' },
          { text: 'Observability', link: '/observability' },
          { text: 'Troubleshooting', link: '/troubleshooting' },
        ],
      },
      {
        text: 'Reference',
        items: [
          { text: 'Custom resources', link: '/resources/', items: resources },
          { text: 'CLI and flags', link: '/cli' },
          { text: 'Development', link: '/development' },
        ],
      },
    ],
    outline: { level: [2, 3] },
    search: { provider: 'local' },
    footer: { message: 'Apache-2.0. Generated parts come from the source: bun scripts/docs-generate.ts.' },
  },
});
