// Builds a JavaScript (or TypeScript) hook source file into a WebAssembly component of the
// hookd:hooks `credentials-exchange-json` world: esbuild bundles the hook, the npm packages it
// requires and the adapter into one ES module; componentize-js turns that into a component.

import { existsSync } from "node:fs";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { build as esbuild } from "esbuild";

import { MISSING_EXPORT_MESSAGE } from "./runtime/adapter.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const ENTRY = path.join(here, "runtime", "entry.js");
const WORLD = "credentials-exchange-json";

/**
 * WASI features left out of the component. Without `http` and `fetch-event` the component
 * imports nothing hookd does not link (hooks get no network); stdio, clocks and random stay,
 * so `console.log`, `Date.now()`, timers and `Math.random()` behave normally at run time.
 */
const DISABLED_FEATURES = ["http", "fetch-event"];

/** Source file extensions the build accepts. */
export const SOURCE_EXTENSIONS = [".js", ".mjs", ".cjs", ".ts", ".mts", ".cts"];

/** A build that failed for a reason the hook's author can fix; `message` says what and where. */
export class HookBuildError extends Error {
  constructor(message) {
    super(message);
    this.name = "HookBuildError";
  }
}

/**
 * The canonical WIT folder: a copy packed into the package (`<package>/wit`), or the
 * repository's `wit/` when the SDK is used from a hookd checkout.
 */
export function witPath() {
  const candidates = [path.join(here, "..", "wit"), path.join(here, "..", "..", "..", "wit")];
  const found = candidates.find((dir) => existsSync(path.join(dir, "hooks.wit")));
  if (found === undefined) {
    throw new Error(`hookd's WIT files were not found (looked in ${candidates.join(", ")})`);
  }
  return found;
}

/** One esbuild message as `file:line:column: text`, then the line with a caret under the spot. */
function formatMessage(message) {
  const { location, text } = message;
  if (!location) {
    return text;
  }
  const { file, line, column, lineText } = location;
  // esbuild counts columns from 0; editors and compilers from 1.
  return `${file}:${line}:${column + 1}: ${text}\n    ${lineText}\n    ${" ".repeat(column)}^`;
}

/** Explains esbuild's failures, adding a hint where the usual cause is known. */
function bundleError(error) {
  const errors = Array.isArray(error?.errors) ? error.errors : [];
  if (errors.length === 0) {
    return new HookBuildError(String(error?.message ?? error));
  }
  const text = errors.map(formatMessage).join("\n");
  const builtin = errors.some((message) =>
    /Could not resolve "(node:)?(fs|net|http|https|crypto|child_process|os|path|dns|tls|zlib|stream)"/.test(
      message.text,
    ),
  );
  const unresolved = errors.some((message) => message.text.startsWith("Could not resolve"));
  let hint = "";
  if (builtin) {
    hint =
      "\nhint: hooks run in a WebAssembly sandbox without Node.js built-in modules " +
      "(no file system, network or processes)";
  } else if (unresolved) {
    hint =
      "\nhint: install the hook's npm dependencies next to it (`npm install` in its folder); " +
      "they are bundled into the component at build time";
  }
  return new HookBuildError(`${text}${hint}`);
}

/** Bundles the hook with the adapter into one ES module; returns its text. */
export async function bundle(sourcePath) {
  const userHook = path.resolve(sourcePath);
  const userHookPlugin = {
    name: "hookd-user-hook",
    setup(build) {
      build.onResolve({ filter: /^hookd:user-hook$/ }, () => ({ path: userHook }));
    },
  };
  let result;
  try {
    result = await esbuild({
      entryPoints: [ENTRY],
      bundle: true,
      write: false,
      format: "esm",
      platform: "neutral",
      target: "es2022",
      mainFields: ["module", "main"],
      conditions: ["import", "require", "default"],
      define: { global: "globalThis", "process.env.NODE_ENV": '"production"' },
      plugins: [userHookPlugin],
      logLevel: "silent",
      legalComments: "none",
    });
  } catch (error) {
    throw bundleError(error);
  }
  return result.outputFiles[0].text;
}

/**
 * Builds `sourcePath` into a component. Returns `{ component: Uint8Array, bundleBytes }`.
 * Throws `HookBuildError` for problems in the hook. `keepBundle`, a path, also writes the
 * bundled ES module there (to read it, or to match a line in a stack trace).
 */
export async function buildHook(sourcePath, { keepBundle } = {}) {
  const extension = path.extname(sourcePath);
  if (!SOURCE_EXTENSIONS.includes(extension)) {
    throw new HookBuildError(
      `${sourcePath}: not a JavaScript or TypeScript file (expected ${SOURCE_EXTENSIONS.join(", ")})`,
    );
  }
  let info;
  try {
    info = await stat(sourcePath);
  } catch (error) {
    throw new HookBuildError(`${sourcePath}: cannot read it (${error.code ?? error.message})`);
  }
  if (!info.isFile()) {
    throw new HookBuildError(`${sourcePath}: not a file`);
  }

  const bundled = await bundle(sourcePath);
  // Loaded on first use: it is large, and `bundle` alone does not need it.
  const { componentize } = await import("@bytecodealliance/componentize-js");
  const workDir = await mkdtemp(path.join(os.tmpdir(), "hookd-js-"));
  // The name stack traces show for lines of the bundle.
  const bundlePath = path.join(workDir, `${path.basename(sourcePath, extension)}.bundle.js`);
  try {
    await writeFile(bundlePath, bundled);
    if (keepBundle) {
      await writeFile(keepBundle, bundled);
    }
    let output;
    try {
      output = await componentize({
        sourcePath: bundlePath,
        witPath: witPath(),
        worldName: WORLD,
        disableFeatures: DISABLED_FEATURES,
      });
    } catch (error) {
      throw initError(sourcePath, error);
    }
    return { component: output.component, bundleBytes: bundled.length };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/** Explains a failure while componentize-js evaluated the bundle (the hook's top level). */
function initError(sourcePath, error) {
  const text = String(error?.message ?? error);
  if (text.includes(MISSING_EXPORT_MESSAGE)) {
    return new HookBuildError(`${sourcePath}: ${MISSING_EXPORT_MESSAGE}`);
  }
  return new HookBuildError(
    `${sourcePath}: evaluating the hook's top-level code failed:\n${text.trim()}`,
  );
}
