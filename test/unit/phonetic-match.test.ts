import { describe, expect, it } from "vitest";
import type { SpokenPhone } from "../../services/assets/asset-text.ts";
import { bestPhoneMatch, phoneEvidence, queryPhones } from "../../services/search/phonetic-match.ts";
import { phoneticKeys } from "../../services/search/spoken-index.ts";

/** A sentence's dictionary phones as if heard, 0.1 s each, with silence and noise markers around it. */
async function heardAs(text: string, offsetSec = 0): Promise<SpokenPhone[]> {
  const phones = ["SIL", ...(await phonesOf(text)), "+NSN+", "SIL"];
  return phones.map((phone, index) => ({ phone, start: offsetSec + index / 10, end: offsetSec + (index + 1) / 10 }));
}

const phonesOf = async (text: string) => (await queryPhones(text)).phones;

describe("finding spoken words by their phones", () => {
  it("finds a phrase exactly where it was said, and scores it 1", async () => {
    const heard = [...(await heardAs("we walked along the harbour")), ...(await heardAs("the quarterly budget meeting is on thursday", 10))];
    const match = bestPhoneMatch(await phonesOf("budget meeting"), heard)!;
    expect(match.score).toBe(1);
    expect(match.start).toBeGreaterThanOrEqual(10);
    expect(match.end).toBeLessThan(15);
  });

  it("scores near-misses between exact and unrelated, and a reversed recording as chance", async () => {
    const heard = await heardAs("the quarterly budget meeting is on thursday");
    const exact = phoneEvidence(await phonesOf("budget meeting"), heard)!;
    const unrelated = phoneEvidence(await phonesOf("purple elephant umbrella"), heard)!;
    // One vowel heard as another costs less than a word that is not there.
    const swapped = heard.map((phone) => (phone.phone === "IY" ? { ...phone, phone: "IH" } : phone));
    const close = phoneEvidence(await phonesOf("budget meeting"), swapped)!;
    expect(exact.margin).toBeGreaterThan(0.15);
    expect(close.score).toBeLessThan(1);
    expect(close.score).toBeGreaterThan(unrelated.score);
    expect(unrelated.margin).toBeLessThan(0.15);
  });

  it("claims nothing for a query too short to tell from chance", async () => {
    expect(bestPhoneMatch(await phonesOf("a"), await heardAs("a cat sat"))).toBeNull();
  });

  it("indexes what was heard in coarse phone classes, so a near-miss shares keys and an unrelated phrase few", async () => {
    const heard = (await heardAs("the quarterly budget meeting is on thursday")).map((phone) => phone.phone);
    const keys = new Set(phoneticKeys(heard));
    const shared = async (text: string) => phoneticKeys(await phonesOf(text)).filter((key) => keys.has(key)).length;
    const exact = phoneticKeys(await phonesOf("budget meeting"));
    expect(await shared("budget meeting")).toBe(exact.length);
    // Vowels heard as other vowels, T as D: the same keys.
    const misheard = heard.map((phone) => (phone === "IY" ? "IH" : phone === "T" ? "D" : phone));
    expect(phoneticKeys(misheard)).toEqual(phoneticKeys(heard));
    expect(await shared("purple elephant umbrella")).toBeLessThan(exact.length / 2);
    // Silence and noise end a stretch: no key runs across them.
    expect(phoneticKeys(["B", "AH", "SIL", "JH", "AH"])).toEqual([]);
  });
});
