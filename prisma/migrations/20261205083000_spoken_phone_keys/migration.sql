-- Spoken words found by an index lookup (issue #21): the phone-class keys heard in each audio or video asset.
-- Assets ingested before this have none until they are reindexed (`reindexAsset`).
CREATE TABLE "SpokenPhoneKey" (
    "assetId" TEXT NOT NULL,
    "projectId" TEXT NOT NULL,
    "key" TEXT NOT NULL,

    CONSTRAINT "SpokenPhoneKey_pkey" PRIMARY KEY ("assetId","key")
);

CREATE INDEX "SpokenPhoneKey_projectId_key_idx" ON "SpokenPhoneKey"("projectId", "key");

ALTER TABLE "SpokenPhoneKey" ADD CONSTRAINT "SpokenPhoneKey_assetId_fkey" FOREIGN KEY ("assetId") REFERENCES "Asset"("id") ON DELETE CASCADE ON UPDATE CASCADE;
