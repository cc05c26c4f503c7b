#!/usr/bin/env node
// hookd-js: builds Auth0-style JavaScript hooks into hookd hook components.
//
//   hookd-js build hook.js [-o hook.wasm]
//   hookd-js build a.js b.js --out-dir DIR
//
// Exit status: 0 built, 1 the hook has a problem (the message says what and where), 2 usage
// or environment errors.

import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";

import { buildHook, HookBuildError } from "../src/build.js";

const USAGE = `usage: hookd-js build <hook.js> [-o <out.wasm>] [--keep-bundle <file>]
       hookd-js build <hook.js>... --out-dir <dir>

Builds Auth0 Hooks code (module.exports = function (client, scope, audience, context, cb))
or Auth0 Actions code (exports.onExecuteCredentialsExchange = async (event, api) => {})
into a WebAssembly component hookd runs. npm packages the hook requires are bundled in.
Deploy the result with \`hookd hooks deploy <out.wasm>\` (or give hookd the .js directly).

options:
  -o, --output <file>      where to write the component (default: the source's name, .wasm)
  --out-dir <dir>          build several hooks into <dir>/<name>.wasm
  --keep-bundle <file>     also write the bundled JavaScript (to match stack-trace lines)
  -h, --help               show this help
  -V, --version            show the version`;

class UsageError extends Error {}

function parse(argv) {
  const options = { sources: [] };
  const args = [...argv];
  const value = (flag) => {
    const next = args.shift();
    if (next === undefined || next.startsWith("-")) {
      throw new UsageError(`${flag} needs a value`);
    }
    return next;
  };
  while (args.length > 0) {
    const arg = args.shift();
    switch (arg) {
      case "-o":
      case "--output":
        options.output = value(arg);
        break;
      case "--out-dir":
        options.outDir = value(arg);
        break;
      case "--keep-bundle":
        options.keepBundle = value(arg);
        break;
      default:
        if (arg.startsWith("-")) {
          throw new UsageError(`unknown option ${arg}`);
        }
        options.sources.push(arg);
    }
  }
  if (options.sources.length === 0) {
    throw new UsageError("no hook source file given");
  }
  if (options.sources.length > 1 && options.outDir === undefined) {
    throw new UsageError("several sources need --out-dir");
  }
  if (options.output !== undefined && options.outDir !== undefined) {
    throw new UsageError("give either -o or --out-dir, not both");
  }
  return options;
}

function outputFor(source, options) {
  const name = `${path.basename(source, path.extname(source))}.wasm`;
  if (options.outDir !== undefined) {
    return path.join(options.outDir, name);
  }
  return options.output ?? path.join(path.dirname(source), name);
}

async function buildOne(source, options) {
  const started = performance.now();
  const output = outputFor(source, options);
  const { component } = await buildHook(source, { keepBundle: options.keepBundle });
  await mkdir(path.dirname(path.resolve(output)), { recursive: true });
  await writeFile(output, component);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const megabytes = (component.length / 1e6).toFixed(1);
  console.error(`built ${source} -> ${output} (${megabytes} MB) in ${seconds} s`);
}

async function main(argv) {
  const [command, ...rest] = argv;
  if (command === "-h" || command === "--help" || command === "help") {
    console.log(USAGE);
    return 0;
  }
  if (command === "-V" || command === "--version") {
    const { readFile } = await import("node:fs/promises");
    const manifest = JSON.parse(await readFile(new URL("../package.json", import.meta.url)));
    console.log(manifest.version);
    return 0;
  }
  if (command !== "build") {
    throw new UsageError(command === undefined ? "no command given" : `unknown command ${command}`);
  }
  const options = parse(rest);
  // Two builds at a time: each runs a Wizer process of several hundred MB.
  const queue = [...options.sources];
  let failed = 0;
  const worker = async () => {
    for (let source = queue.shift(); source !== undefined; source = queue.shift()) {
      try {
        await buildOne(source, options);
      } catch (error) {
        failed += 1;
        if (error instanceof HookBuildError) {
          console.error(`error: ${error.message}`);
        } else {
          throw error;
        }
      }
    }
  };
  await Promise.all([worker(), worker()]);
  return failed === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    if (error instanceof UsageError) {
      console.error(`error: ${error.message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else {
      console.error(`error: ${error?.stack ?? error}`);
      process.exitCode = 2;
    }
  },
);
