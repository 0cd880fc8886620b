// The page script of tests/e2e/test_uppy.py: Uppy with its tus plugin, as an app uses them,
// bundled for the browser by esbuild (a devDependency here) when the test runs.
//
// The page sets window.uppyOptions = {endpoint, apiKey, file, chunkSize} before this script
// runs. The script fetches `file` from the page's own origin, adds it to Uppy as a user's
// pick would be, uploads it to `endpoint` with the api key, and leaves the outcome in
// window.outcome: {url} on success, {error} otherwise.
import Uppy from "@uppy/core";
import Tus from "@uppy/tus";

const { endpoint, apiKey, file, chunkSize } = window.uppyOptions;

try {
  const data = await (await fetch(file)).blob();
  const uppy = new Uppy({ autoProceed: false }).use(Tus, {
    endpoint,
    headers: { Authorization: `Api-Key ${apiKey}` },
    chunkSize,
    retryDelays: null,
  });
  uppy.addFile({ name: file, type: data.type, data });
  const result = await uppy.upload();
  window.outcome = result.failed.length
    ? { error: String(result.failed[0].error) }
    : { url: result.successful[0].uploadURL };
} catch (error) {
  window.outcome = { error: String(error) };
}
