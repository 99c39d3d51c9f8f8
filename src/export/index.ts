// The export layer: dirty reports in the forms live-migration tools consume.
export { readReport, DirtyReport, coreOf, type DirtyContainer, type PageRun, type ReadReportOptions } from './dirty_report.js';
export { windows, DEFAULT_WINDOW, type WindowOptions } from './windows.js';
export { writeReportFiles, EXPORT_SUFFIXES, type ExportFormat } from './report_files.js';
export { writeRunsJson, RUNS_JSON_FORMAT, type RunsMeta } from './runs_json.js';
export { decodeRunsBin, RUNS_BIN_MAGIC, RUNS_BIN_VERSION, RUNS_BIN_HEADER, type RunsBin } from './runs_bin.js';
export { forEachRunBatch, countRuns, RUN_BATCH } from './run_batches.js';
