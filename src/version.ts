/**
 * The build's identity. The version is embedded at compile time from package.json so the binary needs no
 * files; the commit and build date are defined by `npm run build` (scripts/build.ts), and absent when the
 * source runs directly (`bun src/main.ts`, `npm start`, tests).
 *
 * @module
 */
import pkg from '../package.json' with { type: 'json' };

/** Replaced by `bun build --define TSGW_BUILD=…`; an undeclared global in a source run. */
declare const TSGW_BUILD: { commit: string; date: string } | undefined;

export const VERSION: string = pkg.version;

/** The commit (`+dirty` when built from a modified checkout) and UTC build date; undefined from source. */
export const BUILD: { commit: string; date: string } | undefined =
  typeof TSGW_BUILD === 'undefined' ? undefined : TSGW_BUILD;

/** One line for `version` and logs: `0.1.0 (commit 0123456789ab, built 2026-12-02T17:00:00Z, bun 1.4.4)`. */
export function describeBuild(): string {
  const origin = BUILD === undefined ? 'dev, run from source' : `commit ${BUILD.commit}, built ${BUILD.date}`;
  return `${VERSION} (${origin}, bun ${Bun.version})`;
}
