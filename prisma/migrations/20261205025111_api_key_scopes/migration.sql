-- API keys with scopes and an expiry (issue #19). Existing keys keep every scope, so nothing that works stops.
ALTER TABLE "ApiKey" ADD COLUMN "scopes" TEXT[] DEFAULT ARRAY['read', 'write', 'admin']::TEXT[];
ALTER TABLE "ApiKey" ADD COLUMN "expiresAt" TIMESTAMP(3);
