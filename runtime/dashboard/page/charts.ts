/**
 * ECharts, with only the parts the views use (tree-shaken by esbuild): the custom series of the
 * timeline, the pool chart's lines and marks, zoom, tooltips and legends, on a canvas.
 */
import * as echarts from 'echarts/core';
import { CustomChart, LineChart, ScatterChart } from 'echarts/charts';
import { DataZoomComponent, GridComponent, LegendComponent, TooltipComponent } from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';

echarts.use([CustomChart, LineChart, ScatterChart, DataZoomComponent, GridComponent, LegendComponent, TooltipComponent, CanvasRenderer]);

export { echarts };

/** The colour of the n-th task: ECharts' default palette, then golden-angle hues. */
const PALETTE = ['#5470c6', '#91cc75', '#fac858', '#73c0de', '#3ba272', '#fc8452', '#9a60b4', '#ea7ccc', '#5d7092'];
export function taskColor(n: number): string {
  return PALETTE[n] ?? `hsl(${(n * 137.5) % 360}, 55%, 55%)`;
}

/** Resizes the charts with their containers. */
export function autoResize(chart: echarts.ECharts, el: HTMLElement): void {
  new ResizeObserver(() => chart.resize()).observe(el);
}
