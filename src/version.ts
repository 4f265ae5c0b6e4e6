/**
 * The build's version, embedded at compile time from package.json so the binary needs no files.
 *
 * @module
 */
import pkg from '../package.json' with { type: 'json' };

export const VERSION: string = pkg.version;
