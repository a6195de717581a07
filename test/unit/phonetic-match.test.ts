import { describe, expect, it } from "vitest";
import type { SpokenPhone } from "../../services/assets/asset-text.ts";
import { bestPhoneMatch, phoneEvidence, queryPhones } from "../../services/search/phonetic-match.ts";

/** A sentence's dictionary phones as if heard, 0.1 s each, with silence and noise markers around it. */
function heardAs(text: string, offsetSec = 0): SpokenPhone[] {
  const phones = ["SIL", ...queryPhones(text).phones, "+NSN+", "SIL"];
  return phones.map((phone, index) => ({ phone, start: offsetSec + index / 10, end: offsetSec + (index + 1) / 10 }));
}

describe("finding spoken words by their phones", () => {
  it("finds a phrase exactly where it was said, and scores it 1", () => {
    const heard = [...heardAs("we walked along the harbour"), ...heardAs("the quarterly budget meeting is on thursday", 10)];
    const match = bestPhoneMatch(queryPhones("budget meeting").phones, heard)!;
    expect(match.score).toBe(1);
    expect(match.start).toBeGreaterThanOrEqual(10);
    expect(match.end).toBeLessThan(15);
  });

  it("scores near-misses between exact and unrelated, and a reversed recording as chance", () => {
    const heard = heardAs("the quarterly budget meeting is on thursday");
    const exact = phoneEvidence(queryPhones("budget meeting").phones, heard)!;
    const unrelated = phoneEvidence(queryPhones("purple elephant umbrella").phones, heard)!;
    // One vowel heard as another costs less than a word that is not there.
    const swapped = heard.map((phone) => (phone.phone === "IY" ? { ...phone, phone: "IH" } : phone));
    const close = phoneEvidence(queryPhones("budget meeting").phones, swapped)!;
    expect(exact.margin).toBeGreaterThan(0.15);
    expect(close.score).toBeLessThan(1);
    expect(close.score).toBeGreaterThan(unrelated.score);
    expect(unrelated.margin).toBeLessThan(0.15);
  });

  it("claims nothing for a query too short to tell from chance", () => {
    expect(bestPhoneMatch(queryPhones("a").phones, heardAs("a cat sat"))).toBeNull();
  });
});
