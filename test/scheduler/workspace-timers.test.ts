import t from 'tap';
import { KeyedTimers } from '../../src/scheduler/workspace-timers.js';
import { FakeTimers, settableClock } from '../helpers/fake-timers.js';

t.test('one timer per key, each at its own time; setting again replaces; clear cancels', async (t) => {
  const c = settableClock(0);
  const fake = new FakeTimers(c);
  const timers = new KeyedTimers(fake, c);
  const fired: Array<[string, number]> = [];
  timers.set('a', 5_000, () => fired.push(['a', c.now()]));
  timers.set('b', 3_000, () => fired.push(['b', c.now()]));
  timers.set('c', 4_000, () => fired.push(['c', c.now()]));
  timers.set('a', 6_000, () => fired.push(['a2', c.now()]));
  timers.clear('c');
  t.equal(timers.at('a'), 6_000);
  t.equal(timers.size, 2);
  t.equal(fake.size, 2, 'the replaced and the cleared timer are gone');
  await fake.advance(10_000);
  t.same(fired, [
    ['b', 3_000],
    ['a2', 6_000],
  ]);
  t.equal(timers.size, 0, 'fired timers are forgotten');
  t.equal(timers.at('a'), undefined);
});

t.test('a timer may re-arm its own key; clearAll stops everything', async (t) => {
  const c = settableClock(0);
  const fake = new FakeTimers(c);
  const timers = new KeyedTimers(fake, c);
  let ticks = 0;
  const tick = () => {
    ticks += 1;
    timers.set('w', c.now() + 1_000, tick);
  };
  timers.set('w', 1_000, tick);
  await fake.advance(5_500);
  t.equal(ticks, 5);
  t.equal(timers.size, 1);
  timers.clearAll();
  t.equal(fake.size, 0);
});
