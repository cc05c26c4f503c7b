// The TypeScript declarations (index.d.ts) give editors completion for both hook shapes and
// catch mistakes: type-checks typical hooks (which must pass) and a wrong one (which must not).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const sdk = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const tsc = path.join(sdk, "node_modules", "typescript", "bin", "tsc");

/** Type-checks `files` as a project that depends on hookd-js; returns tsc's output. */
function typeCheck(files) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "hookd-js-types-"));
  mkdirSync(path.join(dir, "node_modules"));
  symlinkSync(sdk, path.join(dir, "node_modules", "hookd-js"), "dir");
  for (const file of files) {
    copyFileSync(path.join(sdk, "test", "types", file), path.join(dir, file));
  }
  const args = ["--noEmit", "--allowJs", "--checkJs", "--module", "nodenext", "--types", "", ...files];
  try {
    execFileSync(process.execPath, [tsc, ...args], { cwd: dir, encoding: "utf8" });
    return "";
  } catch (error) {
    return `${error.stdout}${error.stderr}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("typical hooks of both shapes type-check", () => {
  const good = readdirSync(path.join(sdk, "test", "types")).filter((f) => !f.startsWith("bad-"));
  assert.deepEqual(good.sort(), ["action.js", "hook.js"]);
  assert.equal(typeCheck(good), "");
});

test("a wrong deny code and a wrong event field are type errors", () => {
  const output = typeCheck(["bad-action.js"]);
  assert.match(output, /"nope"' is not assignable/);
  assert.match(output, /Property 'id' does not exist/);
});
