// Counts its calls in a module-level global. With a fresh instance per call (hookd's default)
// every call sees 1; with instance reuse the count grows from call to call on one instance.
// The audience `https://fail.test/` throws, which makes hookd discard the instance.
let calls = 0;

module.exports = function (client, scope, audience, context, cb) {
  calls += 1;
  if (audience === "https://fail.test/") {
    throw new Error(`failing on call ${calls}`);
  }
  cb(null, { scope, "https://hookd.test/calls": calls });
};
