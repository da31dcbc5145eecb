/**
 * deploy/grafana/aoegw-dashboard.json is a Grafana dashboard (JSON model) of the metrics
 * src/control/metrics.ts serves: valid JSON, a data-source variable every panel uses, and no
 * query naming a metric the gateway does not have (a renamed metric fails here, not in Grafana).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GatewayMetrics } from '../../../src/control/metrics.js';
import type { GatewayStats } from '../../../src/gateway/daemon.js';

const file = join(import.meta.dirname, '..', '..', '..', 'deploy', 'grafana', 'aoegw-dashboard.json');

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: { expr: string; datasource?: { uid: string } }[];
}

/** Grafana's reference to the data-source variable (a literal, not a template string). */
const DS_UID = ['$', '{datasource}'].join('');

const histogramOf = (series: string) => series.replace(/_(bucket|sum|count)$/, '');

describe('deploy/grafana/aoegw-dashboard.json', () => {
  const dash = JSON.parse(readFileSync(file, 'utf8')) as {
    uid: string;
    panels: Panel[];
    templating: { list: { name: string; type: string; query: unknown }[] };
  };
  const panels = dash.panels.filter((p) => p.type !== 'row');

  it('has a Prometheus data-source variable that every query uses', () => {
    const ds = dash.templating.list.find((v) => v.type === 'datasource');
    expect(ds).toMatchObject({ name: 'datasource', query: 'prometheus' });
    for (const p of panels) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: DS_UID });
      for (const t of p.targets ?? []) expect(t.datasource?.uid, p.title).toBe(DS_UID);
    }
  });

  it('has the panels operators look for, each with its own id', () => {
    const titles = panels.map((p) => p.title);
    for (const t of [
      'Export IOPS',
      'Export throughput',
      'Datagrams received by outcome',
      'Rejected datagrams by reason',
      'Handshakes',
      'Peers up',
      'Pending / in flight',
      'Export errors and drops',
      'Export service time (p50 / p99)',
    ])
      expect(titles).toContain(t);
    const ids = dash.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('queries only metrics the gateway serves', async () => {
    const metrics = new GatewayMetrics({ stats: () => ({}) as GatewayStats }).registry.getMetricsAsArray();
    const served = new Set(metrics.map((m) => m.name));
    const types = new Map(metrics.map((m) => [m.name, String((m as { type?: unknown }).type)]));
    const used = new Set(
      panels.flatMap((p) => (p.targets ?? []).flatMap((t) => t.expr.match(/aoegw_\w+/g) ?? [])),
    );
    expect(used.size).toBeGreaterThan(20);
    // A histogram is served as NAME and queried as NAME_bucket, NAME_sum, NAME_count.
    for (const name of used) {
      const family = served.has(name) ? name : histogramOf(name);
      expect(served, name).toContain(family);
      if (family !== name) expect(types.get(family), name).toBe('histogram');
    }
    // The p99 panel asks for a quantile of the histogram's buckets.
    expect(used).toContain('aoegw_export_service_seconds_bucket');
  });
});
