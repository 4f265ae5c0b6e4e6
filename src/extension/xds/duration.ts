/**
 * Gateway API durations as protobuf Durations, via the API's own parser so a value that validated is a
 * value Envoy gets.
 *
 * @module
 */
import { type Duration, durationFromMs } from '@bufbuild/protobuf/wkt';
import { parseDuration } from '../../api/index.ts';

export const toDuration = (text: string): Duration => durationFromMs(parseDuration(text));
