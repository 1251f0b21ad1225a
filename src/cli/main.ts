#!/usr/bin/env node
/**
 * Entry point of the `redmesh` binary. The only place that touches `process`: argv, env, streams,
 * the exit code.
 * @module
 */
import { readFile } from "node:fs/promises";
import { runCli } from "./program.js";

// Ctrl-C (or SIGTERM) ends a following command cleanly; a second one exits at once.
const interrupt = new AbortController();
const onSignal = () => {
  if (interrupt.signal.aborted) process.exit(130);
  interrupt.abort();
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  signal: interrupt.signal,
  readFile: (path) => readFile(path, "utf8"),
  execPath: process.execPath,
});
process.off("SIGINT", onSignal);
process.off("SIGTERM", onSignal);
process.exitCode = code;
