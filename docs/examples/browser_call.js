// Call a dataserve server from a web page, as HTTPDataClient.send does from Python:
// a string goes as text, a Uint8Array or ArrayBuffer as bytes, anything else as JSON,
// and the reply comes back as its type. A refused or failed call throws the server's message.
async function callDataserve(server, resource, value, token) {
  let body = value;
  let type = "application/octet-stream";
  if (typeof value === "string") {
    type = "text/plain; charset=utf-8";
  } else if (!(value instanceof Uint8Array || value instanceof ArrayBuffer)) {
    body = JSON.stringify(value);
    type = "application/json";
  }
  const headers = { "Content-Type": type };
  if (token) headers["Authorization"] = "Bearer " + token;
  const reply = await fetch(server + resource, { method: "PUT", body, headers });
  const kind = reply.headers.get("Content-Type") || "";
  if (!reply.ok) {
    const error = kind.startsWith("application/json") ? await reply.json() : {};
    throw new Error(`${reply.status} from ${resource}: ${error.message || reply.statusText}`);
  }
  if (kind.startsWith("application/json")) return reply.json();
  if (kind.startsWith("text/")) return reply.text();
  return new Uint8Array(await reply.arrayBuffer());
}
