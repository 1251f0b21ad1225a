#!/usr/bin/env node
/**
 * Entry point of the `redmesh` binary. The only place that touches `process`: argv, env, streams,
 * the exit code.
 * @module
 */
import { runCli } from "./program.js";

const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
process.exitCode = code;
