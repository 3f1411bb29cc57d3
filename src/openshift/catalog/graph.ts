import { catalogError } from './errors.js';
import type { FbcChannel } from './fbc.js';
import type { SemVer, VersionRange } from './semver.js';

/**
 * A channel's upgrade graph, as OLM and opm read it: an edge from every entry to the
 * entry it `replaces` and to each entry it `skips`. `skipRange` adds no edge here: OLM
 * applies it when it picks an upgrade, but opm's Channel.Head and catalog-filter ignore
 * it, so it never changes which entry is the head.
 *
 * Referenced names that are not entries of the channel (the tail usually replaces a
 * bundle that left the channel long ago) are nodes too, without edges of their own.
 *
 * `ChannelGraph.of` refuses, as a `graph` catalog error, what catalog-filter's
 * newChannel refuses: duplicate entries, an entry that replaces or skips itself, no
 * head or several heads (an entry nothing replaces or skips), and a cycle.
 */
interface Node {
  readonly name: string;
  replaces?: Node;
  readonly skips: Node[];
  readonly isEntry: boolean;
}

export class ChannelGraph {
  readonly head: string;
  readonly #nodes: ReadonlyMap<string, Node>;

  private constructor(head: string, nodes: ReadonlyMap<string, Node>) {
    this.head = head;
    this.#nodes = nodes;
  }

  static of(ch: FbcChannel): ChannelGraph {
    const where = `package "${ch.package}" channel "${ch.name}"`;
    if (ch.entries.length === 0) throw catalogError('graph', `${where}: the channel has no entries`);
    const nodes = new Map<string, Node>();
    const node = (name: string, isEntry: boolean): Node => {
      let n = nodes.get(name);
      if (n === undefined) {
        n = { name, skips: [], isEntry };
        nodes.set(name, n);
      } else if (isEntry && !n.isEntry) {
        // referenced before it was listed: it is an entry after all
        (n as { isEntry: boolean }).isEntry = true;
      }
      return n;
    };
    const incoming = new Map<string, Set<Node>>();
    const addEdge = (from: Node, to: Node): void => {
      let s = incoming.get(to.name);
      if (s === undefined) incoming.set(to.name, (s = new Set()));
      s.add(from);
    };
    const problems: string[] = [];
    const seen = new Set<string>();
    for (const e of ch.entries) {
      if (seen.has(e.name)) {
        problems.push(`duplicate channel entry "${e.name}"`);
        continue;
      }
      seen.add(e.name);
      const n = node(e.name, true);
      if (e.replaces !== undefined) {
        if (e.replaces === e.name) problems.push(`entry "${e.name}" replaces itself`);
        const r = node(e.replaces, false);
        addEdge(n, r);
        n.replaces = r;
      }
      for (const s of e.skips) {
        if (s === e.name) problems.push(`entry "${e.name}" skips itself`);
        const t = node(s, false);
        addEdge(n, t);
        if (!n.skips.includes(t)) n.skips.push(t);
      }
    }
    const heads = ch.entries.filter((e, i, all) => all.findIndex((x) => x.name === e.name) === i && (incoming.get(e.name)?.size ?? 0) === 0).map((e) => e.name);
    if (heads.length === 0) problems.push('no channel head found (every entry is replaced or skipped by another)');
    if (heads.length > 1) problems.push(`multiple channel heads found: ${[...heads].sort().join(', ')}`);
    if (problems.length > 0) throw catalogError('graph', `${where}: ${problems.join('; ')}`, { package: ch.package, channel: ch.name });
    // Kahn's walk from the head: an edge left over is part of a cycle.
    const left = new Map([...incoming].map(([k, v]) => [k, new Set(v)]));
    const queue: Node[] = [nodes.get(heads[0]!)!];
    while (queue.length > 0) {
      const cur = queue.shift()!;
      for (const next of [...(cur.replaces ? [cur.replaces] : []), ...cur.skips]) {
        const s = left.get(next.name);
        if (s === undefined) continue;
        s.delete(cur);
        if (s.size === 0) {
          left.delete(next.name);
          queue.push(next);
        }
      }
    }
    if (left.size > 0) {
      throw catalogError('graph', `${where}: the upgrade graph has a cycle (through ${[...left.keys()].sort().slice(0, 5).join(', ')})`, { package: ch.package, channel: ch.name });
    }
    return new ChannelGraph(heads[0]!, nodes);
  }

  /**
   * The entries a version range keeps, by catalog-filter's filterByVersionRange:
   *
   * Walk the replaces chain from the head. Count, for each node, the bundles in range
   * at or below it (itself and what it skips, each counted once, deepest first). The
   * new head is the lowest chain node with the highest count; the new tail the first
   * chain node with a count of 0 (excluded). Every chain node between them is kept,
   * in range or not (so the kept channel still has one head and no gap), plus each
   * skipped node that is in range. A chain node kept although outside the range is
   * reported in `outside`.
   *
   * `versionOf` gives a bundle's version (undefined for names that are no bundle, or
   * whose version is not strict SemVer: they never count as in range).
   */
  keepInRange(range: VersionRange, versionOf: (name: string) => SemVer | undefined): { keep: Set<string>; outside: string[] } {
    const chain: Node[] = [];
    const onChain = new Set<string>();
    for (let cur: Node | undefined = this.#nodes.get(this.head); cur !== undefined && !onChain.has(cur.name); cur = cur.replaces) {
      chain.push(cur);
      onChain.add(cur.name);
    }
    const inRange = (n: Node): boolean => {
      const v = versionOf(n.name);
      return v !== undefined && range.check(v);
    };
    const seen = new Set<string>();
    const counts = new Map<string, number>();
    for (let i = chain.length - 1; i >= 0; i--) {
      const n = chain[i]!;
      let count = i + 1 < chain.length ? (counts.get(chain[i + 1]!.name) ?? 0) : 0;
      if (!seen.has(n.name) && inRange(n)) {
        seen.add(n.name);
        count++;
      }
      for (const s of n.skips) {
        if (!seen.has(s.name) && inRange(s)) {
          seen.add(s.name);
          count++;
        }
      }
      counts.set(n.name, count);
    }
    let head: number | undefined;
    let tail: number | undefined;
    let max = -1;
    for (let i = 0; i < chain.length; i++) {
      const c = counts.get(chain[i]!.name) ?? 0;
      if (c >= max) {
        head = i;
        max = c;
      }
      if (c === 0) {
        tail = i;
        break;
      }
    }
    const keep = new Set<string>();
    const outside: string[] = [];
    for (let i = head ?? 0; i < (tail ?? chain.length); i++) {
      const n = chain[i]!;
      if (!inRange(n)) outside.push(n.name);
      keep.add(n.name);
      for (const s of n.skips) if (inRange(s)) keep.add(s.name);
    }
    return { keep, outside };
  }
}
