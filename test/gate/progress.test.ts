import { describe, expect, it } from 'vitest';
import { createProgress, weightProgress } from '../../src/cli/progress.js';

class FakeStream {
  out = '';
  constructor(
    readonly isTTY: boolean,
    readonly columns = 80,
  ) {}
  write(s: string) {
    this.out += s;
    return true;
  }
}

describe('createProgress', () => {
  it('is silent when the stream is not a terminal', () => {
    const s = new FakeStream(false);
    const p = createProgress('measuring', 10, { stream: s });
    for (let i = 0; i < 10; i++) p.tick();
    p.done();
    expect(s.out).toBe('');
  });

  it('redraws one line with \\r on a terminal, throttled, and clears it when done', () => {
    const s = new FakeStream(true);
    let t = 0;
    const p = createProgress('measuring', 4, { stream: s, now: () => t, intervalMs: 100 });
    p.tick(); // first draw
    p.tick(); // throttled (same instant)
    t = 1500;
    p.tick(); // drawn
    p.tick(); // the last tick always draws
    expect(s.out.split('\r').filter(Boolean)).toEqual([
      'measuring [#####...............] 1/4 25% 0s',
      'measuring [###############.....] 3/4 75% 1s',
      'measuring [####################] 4/4 100% 1s',
    ]);
    expect(s.out).not.toContain('\n');
    p.done();
    expect(s.out.endsWith(`\r${' '.repeat('measuring [####################] 4/4 100% 1s'.length)}\r`)).toBe(true);
    p.done(); // idempotent
    p.tick(); // ignored after done
    expect(s.out.endsWith('\r')).toBe(true);
  });

  it('fits narrow terminals and handles an unknown total', () => {
    const s = new FakeStream(true, 24);
    const p = createProgress('a-very-long-label-for-progress', 10, { stream: s, now: () => 0 });
    p.tick(3);
    expect(s.out).toBe('\ra-very-long-label-for-p');
    const u = new FakeStream(true);
    const q = createProgress('runs', 0, { stream: u, now: () => 0 });
    q.tick();
    expect(u.out).toBe('\rruns 1 0s');
  });
});

describe('weightProgress', () => {
  it('draws bytes in MiB/GiB for big models and nothing for small ones', () => {
    const big = new FakeStream(true);
    let t = 0;
    const p = weightProgress({ stream: big, now: () => t, intervalMs: 0 });
    p.update(2 ** 30, 4 * 2 ** 30);
    t = 2000;
    p.update(4 * 2 ** 30, 4 * 2 ** 30);
    p.done();
    const frames = big.out.split('\r').filter((x) => x.trim());
    expect(frames[0]).toBe('reading weights [#####...............] 1.00 GiB/4.00 GiB 25% 0s');
    expect(frames[1]).toBe('reading weights [####################] 4.00 GiB/4.00 GiB 100% 2s');
    const small = new FakeStream(true);
    const s = weightProgress({ stream: small });
    s.update(1 << 20, 10 << 20);
    s.done();
    expect(small.out).toBe('');
  });
});
