// The export layer: dirty reports in the forms live-migration tools consume.
export { readReport, DirtyReport, coreOf, type DirtyContainer, type PageRun, type ReadReportOptions } from './dirty_report.js';
export { windows, DEFAULT_WINDOW, type WindowOptions } from './windows.js';
