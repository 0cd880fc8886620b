// One upload with tus-js-client in Node, for tests/e2e/test_tus_js_client.py.
//
//   node tus_upload.mjs ENDPOINT AUTHORIZATION FILE MODE [UPLOAD_URL]
//
// MODE: "whole" uploads FILE; "cut" aborts the request in flight once more than half of
// FILE is sent (the connection drops mid-PATCH); "resume" carries on the upload at
// UPLOAD_URL from the offset the server answers; "bad-checksum" sends a wrong
// Upload-Checksum. Prints one JSON line: {"url", "status", "error"}.
import { readFileSync } from "node:fs";
import { Upload } from "tus-js-client";

const [endpoint, authorization, file, mode, uploadUrl] = process.argv.slice(2);
const data = readFileSync(file);
const headers = { Authorization: authorization };
if (mode === "bad-checksum") {
  headers["Upload-Checksum"] = "sha1 " + Buffer.alloc(20).toString("base64");
}

const outcome = await new Promise((resolve) => {
  const upload = new Upload(data, {
    endpoint,
    uploadUrl: mode === "resume" ? uploadUrl : null,
    headers,
    chunkSize: 512 * 1024,
    retryDelays: null,
    metadata: { filename: "upload.bin" },
    onProgress(sent) {
      if (mode === "cut" && sent > data.length / 2) {
        upload.abort().then(() => resolve({ url: upload.url, status: "aborted" }));
      }
    },
    onSuccess() {
      resolve({ url: upload.url, status: "done" });
    },
    onError(error) {
      const status = error.originalResponse ? error.originalResponse.getStatus() : null;
      resolve({ url: upload.url, status, error: String(error).slice(0, 300) });
    },
  });
  upload.start();
});
console.log(JSON.stringify(outcome));
