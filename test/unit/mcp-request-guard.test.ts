import { describe, expect, it } from "vitest";
import { isAllowedHost, isAllowedOrigin } from "../../services/gateway/mcp/request-guard.ts";

describe("MCP Host/Origin allow-list", () => {
  const allow = { hosts: ["tessera.example.com", "internal.example:8443"] };

  it("allows the localhost forms on any port, and the configured hosts", () => {
    for (const host of ["localhost", "localhost:4000", "127.0.0.1:4000", "[::1]:4000", "tessera.example.com", "TESSERA.example.com:443", "internal.example:8443"]) {
      expect(isAllowedHost(host, allow), host).toBe(true);
    }
  });

  it("refuses other hosts, other ports of a host:port entry, and junk", () => {
    for (const host of ["evil.com", "evil.com:4000", "localhost.evil.com", "internal.example:8080", "tessera.example.com.evil.com", "", "a b", "localhost/x", "user@localhost"]) {
      expect(isAllowedHost(host, allow), host).toBe(false);
    }
  });

  it("allows no Origin (a non-browser client) and allowed origins; refuses others", () => {
    expect(isAllowedOrigin(null, allow)).toBe(true);
    expect(isAllowedOrigin("http://localhost:5173", allow)).toBe(true);
    expect(isAllowedOrigin("https://tessera.example.com", allow)).toBe(true);
    expect(isAllowedOrigin("http://evil.com", allow)).toBe(false);
    expect(isAllowedOrigin("null", allow)).toBe(false);
    expect(isAllowedOrigin("file://localhost", allow)).toBe(false);
  });
});
