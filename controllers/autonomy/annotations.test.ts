import { describe, expect, it } from 'vitest';
import type { Node } from '../kube/objects.ts';
import { readAutonomy, type AutonomySetting } from './annotations.ts';

const FLAG = 'edgebox.io/autonomy';
const DURATION = 'edgebox.io/autonomy-duration';
const YURT_FLAG = 'node.beta.openyurt.io/autonomy';
const YURT_DURATION = 'node.openyurt.io/autonomy-duration';
const HOUR = 3_600_000;

function annotated(annotations: Record<string, string> | undefined): Node {
  return {
    metadata: {
      name: 'edge-1',
      uid: 'u',
      resourceVersion: '1',
      ...(annotations ? { annotations } : {}),
    },
    spec: {},
    status: {},
  };
}

function autonomous(durationMs: number, source: string): AutonomySetting {
  return { kind: 'autonomous', durationMs, source };
}

describe('autonomy annotations', () => {
  it.each<[string, Record<string, string> | undefined, AutonomySetting]>([
    ['no annotations', undefined, { kind: 'none' }],
    ['unrelated annotations', { 'example.com/x': 'true' }, { kind: 'none' }],
    ['autonomy "true": no time limit', { [FLAG]: 'true' }, autonomous(0, `${FLAG}="true"`)],
    ['autonomy "false": off', { [FLAG]: 'false' }, { kind: 'disabled', source: `${FLAG}="false"` }],
    ['a duration alone', { [DURATION]: '1h' }, autonomous(HOUR, `${DURATION}="1h"`)],
    ['duration 0: no time limit', { [DURATION]: '0' }, autonomous(0, `${DURATION}="0"`)],
    ['duration 0s: no time limit', { [DURATION]: '0s' }, autonomous(0, `${DURATION}="0s"`)],
    [
      'a compound Go duration',
      { [DURATION]: '1h30m' },
      autonomous(1.5 * HOUR, `${DURATION}="1h30m"`),
    ],
    [
      'a fractional Go duration',
      { [DURATION]: '1.5h' },
      autonomous(1.5 * HOUR, `${DURATION}="1.5h"`),
    ],
    ['milliseconds', { [DURATION]: '2500ms' }, autonomous(2500, `${DURATION}="2500ms"`)],
    [
      'flag and duration',
      { [FLAG]: 'true', [DURATION]: '8h' },
      autonomous(8 * HOUR, `${FLAG}="true", ${DURATION}="8h"`),
    ],
    [
      '"false" wins over a duration',
      { [FLAG]: 'false', [DURATION]: '8h' },
      { kind: 'disabled', source: `${FLAG}="false"` },
    ],
    ["OpenYurt's flag", { [YURT_FLAG]: 'true' }, autonomous(0, `${YURT_FLAG}="true"`)],
    [
      "OpenYurt's duration",
      { [YURT_DURATION]: '45m' },
      autonomous(45 * 60_000, `${YURT_DURATION}="45m"`),
    ],
    ["OpenYurt's duration 0", { [YURT_DURATION]: '0' }, autonomous(0, `${YURT_DURATION}="0"`)],
    [
      "OpenYurt's false",
      { [YURT_FLAG]: 'false' },
      { kind: 'disabled', source: `${YURT_FLAG}="false"` },
    ],
    [
      "edgebox's duration wins over OpenYurt's",
      { [DURATION]: '2h', [YURT_DURATION]: '10m', [YURT_FLAG]: 'true' },
      autonomous(2 * HOUR, `${DURATION}="2h"`),
    ],
    [
      "edgebox's false wins over OpenYurt's true",
      { [FLAG]: 'false', [YURT_FLAG]: 'true' },
      { kind: 'disabled', source: `${FLAG}="false"` },
    ],
    [
      "edgebox's true wins over OpenYurt's false",
      { [FLAG]: 'true', [YURT_FLAG]: 'false' },
      autonomous(0, `${FLAG}="true"`),
    ],
  ])('%s', (_, annotations, expected) => {
    expect(readAutonomy(annotated(annotations))).toEqual(expected);
  });

  it.each<[string, Record<string, string>, string[]]>([
    ['"yes"', { [FLAG]: 'yes' }, [`annotation ${FLAG}="yes" is not "true" or "false"`]],
    [
      '"True" (case matters)',
      { [FLAG]: 'True' },
      [`annotation ${FLAG}="True" is not "true" or "false"`],
    ],
    ['an empty flag', { [FLAG]: '' }, [`annotation ${FLAG}="" is not "true" or "false"`]],
    [
      'a duration with a space',
      { [DURATION]: '1 hour' },
      [`annotation ${DURATION}="1 hour" is not a Go duration (such as 30m, 1h, 0 for no limit)`],
    ],
    [
      'days (not a Go unit)',
      { [DURATION]: '2d' },
      [`annotation ${DURATION}="2d" is not a Go duration (such as 30m, 1h, 0 for no limit)`],
    ],
    [
      'a number without unit',
      { [DURATION]: '3600' },
      [`annotation ${DURATION}="3600" is not a Go duration (such as 30m, 1h, 0 for no limit)`],
    ],
    ['a negative duration', { [DURATION]: '-1h' }, [`annotation ${DURATION}="-1h" is negative`]],
    [
      'both wrong',
      { [FLAG]: 'on', [DURATION]: 'forever' },
      [
        `annotation ${FLAG}="on" is not "true" or "false"`,
        `annotation ${DURATION}="forever" is not a Go duration (such as 30m, 1h, 0 for no limit)`,
      ],
    ],
    [
      'invalid OpenYurt value',
      { [YURT_DURATION]: '1y' },
      [`annotation ${YURT_DURATION}="1y" is not a Go duration (such as 30m, 1h, 0 for no limit)`],
    ],
    // edgebox's names take precedence even when their value is the unreadable one.
    [
      'invalid edgebox value beside a valid OpenYurt one',
      { [FLAG]: 'si', [YURT_FLAG]: 'true' },
      [`annotation ${FLAG}="si" is not "true" or "false"`],
    ],
  ])('invalid: %s, naming the value', (_, annotations, problems) => {
    expect(readAutonomy(annotated(annotations))).toEqual({ kind: 'invalid', problems });
  });
});
