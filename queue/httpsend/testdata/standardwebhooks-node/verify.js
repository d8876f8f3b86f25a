// Verifies one captured delivery with the npm standardwebhooks reference library.
// Usage: node verify.js SECRET HEADERS.json BODY.bin — exits 0 when it verifies, 1 otherwise.
const { Webhook } = require("standardwebhooks");
const fs = require("fs");
const [secret, headersFile, bodyFile] = process.argv.slice(2);
const headers = JSON.parse(fs.readFileSync(headersFile, "utf8"));
const body = fs.readFileSync(bodyFile);
try {
  // jsonParse: false, as faxhook's body is a multipart form, not JSON.
  new Webhook(secret).verify(body, headers, { jsonParse: false });
  console.log("verified");
} catch (e) {
  console.log("not verified: " + e.message);
  process.exitCode = 1;
}
