// Counts its calls in a module-level global. With a fresh instance per call (hookd's default)
// every call sees 1; with instance reuse the count grows from call to call on one instance.
// Each instance also names itself on its first call (not at build time, which every instance
// would share), so a test can tell instances apart. The audience `https://fail.test/` throws,
// which makes hookd discard the instance.
let calls = 0;
let instance = "";

module.exports = function (client, scope, audience, context, cb) {
  calls += 1;
  if (instance === "") {
    instance = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  }
  if (audience === "https://fail.test/") {
    throw new Error(`failing on call ${calls}`);
  }
  cb(null, { scope, "https://hookd.test/calls": calls, "https://hookd.test/instance": instance });
};
