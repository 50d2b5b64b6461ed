-- Tests for rules/secrets.lua through rules/tests/pack_policy.lua (blocks on
-- any finding of any pack):
--   ./build/dlpgate test rules/tests/pack_policy.lua rules/tests/secrets_test.lua
-- Every detector has a body where it must find something and a near miss
-- that must leave the body clean (no finding from any pack). Then the
-- ways a secret travels: JSON with \u and \/ escapes, form bodies with
-- %XX, gzip, multipart file uploads, 100 KB of text before the secret,
-- and bodies full of keyword hits.
--
-- The fake secrets are assembled here (fake()) so that this file holds no
-- string a secret scanner or a push-protection hook would stop.

local C = require "tests.cases"
local ALNUM, UPPER_ALNUM, LOWER_ALNUM, HEX, B32, B64, URLSAFE, LETTERS, DIGITS =
	C.ALNUM, C.UPPER_ALNUM, C.LOWER_ALNUM, C.HEX, C.B32, C.B64, C.URLSAFE, C.LETTERS, C.DIGITS
local JSON, FORM = C.JSON, C.FORM
local fake, request, found, clean, pem = C.fake, C.request, C.found, C.clean, C.pem

local function uuid(seed)
	return fake(seed, 8, HEX) .. "-" .. fake(seed + 1, 4, HEX) .. "-" .. fake(seed + 2, 4, HEX) .. "-"
		.. fake(seed + 3, 4, HEX) .. "-" .. fake(seed + 4, 12, HEX)
end

-- percent-encodes every byte that is not a letter or a digit
local function urlencode(s)
	return (s:gsub("[^%w]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- ~110 KB of text that holds nothing
local FILLER = string.rep("The quick brown fox jumps over the lazy dog while 42 clocks tick. ", 1700)

local cases = {
	-- ---- AWS ----
	found("aws key id in an env file", "aws_access_key_id", "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nAWS_REGION=us-east-1"),
	clean("aws key id one character short", "key AKIAIOSFODNN7EXAMPL"),
	found("aws credentials file", { "aws_access_key_id", "aws_secret_access_key" },
		"[default]\naws_access_key_id = AKIA" .. fake(1001, 16, B32) .. "\naws_secret_access_key = " .. fake(1002, 40, B64) .. "\n"),
	found("STS credentials as JSON", { "aws_access_key_id", "aws_secret_access_key" },
		"{\"Credentials\":{\"AccessKeyId\":\"ASIA" .. fake(1003, 16, B32) .. "\",\"SecretAccessKey\":\"" .. fake(1004, 40, ALNUM)
			.. "\",\"Expiration\":\"2030-01-01T00:00:00Z\"}}", { headers = JSON }),
	clean("aws secret placeholder", "aws_secret_access_key = xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),

	-- ---- GitHub ----
	found("ghp_ in JSON with \\u escapes", "github_pat", "{\"k\":\"\\u0067hp_" .. fake(1011, 36) .. "\"}", { headers = JSON }),
	clean("ghp_ one short", "see ghp_" .. fake(1012, 35) .. " in the docs"),
	found("gho_ in a form body", "github_oauth_token", "state=1&code=gho%5F" .. fake(1013, 36), { headers = FORM }),
	clean("gho_ too short", "gho_" .. fake(1014, 20)),
	found("ghs_ in a gzip body", "github_app_token", "installation ghs_" .. fake(1015, 36), { encoding = "gzip" }),
	clean("unknown gh prefix", "ghx_" .. fake(1016, 36)),
	found("ghr_ refresh token", "github_refresh_token", "{\"refresh_token\":\"ghr_" .. fake(1017, 76) .. "\"}", { headers = JSON }),
	clean("ghr_ with a suffix", "ghr_" .. fake(1018, 36) .. "_v2"),
	found("fine-grained PAT", "github_fine_grained_pat", "git push https://github_pat_" .. fake(1019, 22) .. "_" .. fake(1020, 59) .. "@github.com"),
	clean("fine-grained PAT prefix in prose", "tokens start with github_pat_ then 82 characters"),

	-- ---- GitLab ----
	found("glpat in a header dump", "gitlab_pat", "PRIVATE-TOKEN: glpat-" .. fake(1021, 20, URLSAFE)),
	clean("glpat too short", "glpat-" .. fake(1022, 12)),
	found("gldt deploy token", "gitlab_deploy_token", "gldt-" .. fake(1023, 24)),
	clean("gldt of one letter", "gldt-aaaaaaaaaaaaaaaaaaaaaaaa"),
	found("runner registration token", "gitlab_runner_token", "gitlab-runner register --registration-token GR1348941" .. fake(1024, 20, URLSAFE)),
	clean("runner token too short", "glrt-" .. fake(1025, 8)),
	found("pipeline trigger token", "gitlab_other_token", "curl -F token=glptt-" .. fake(1026, 40, HEX) .. " https://gitlab.acme.io/api"),
	clean("trigger token not hex", "glptt-" .. fake(1027, 40, LETTERS)),

	-- ---- Slack ----
	found("bot token", "slack_bot_token", "SLACK_BOT_TOKEN=xoxb-" .. fake(1031, 11, DIGITS) .. "-" .. fake(1032, 13, DIGITS) .. "-" .. fake(1033, 24)),
	clean("bot token placeholder", "xoxb-YOUR-BOT-TOKEN"),
	found("user token", "slack_user_token", "xoxp-" .. fake(1034, 11, DIGITS) .. "-" .. fake(1035, 11, DIGITS) .. "-" .. fake(1036, 12, DIGITS) .. "-" .. fake(1037, 32, HEX)),
	clean("user token with too few parts", "xoxp-1234-5678-9012-abcd"),
	found("refresh token", "slack_other_token", "xoxr-" .. fake(1038, 11, DIGITS) .. "-" .. fake(1039, 40)),
	clean("refresh token placeholder", "xoxr-your-refresh-token"),
	found("app-level token", "slack_app_token", "xapp-1-A" .. fake(1040, 10, UPPER_ALNUM) .. "-" .. fake(1041, 13, DIGITS) .. "-" .. fake(1042, 64, HEX)),
	clean("app-level token malformed", "xapp-1-A0123-123-abc"),
	found("webhook URL with JSON \\/ escapes", "slack_webhook_url",
		"{\"url\":\"https:\\/\\/hooks.slack.com\\/services\\/T" .. fake(1043, 8, UPPER_ALNUM) .. "\\/B" .. fake(1044, 10, UPPER_ALNUM)
			.. "\\/" .. fake(1045, 24) .. "\"}", { headers = JSON }),
	clean("webhook URL of the documentation", "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXX"),

	-- ---- Stripe ----
	found("live secret key", "stripe_live_secret_key", "Stripe.api_key = 'sk_live_51" .. fake(1051, 97) .. "'"),
	clean("live key too short", "sk_live_" .. fake(1052, 16)),
	found("restricted key", "stripe_restricted_key", "rk_live_" .. fake(1053, 24)),
	clean("restricted key inside a word", "work_live_" .. fake(1054, 24)),
	found("test key", "stripe_test_key", "sk_test_" .. fake(1055, 24)),
	clean("publishable test key", "pk_test_" .. fake(1056, 24)),
	found("webhook secret", "stripe_webhook_secret", "endpoint_secret = 'whsec_" .. fake(1057, 32) .. "'"),
	clean("webhook secret too short", "whsec_" .. fake(1058, 20)),

	-- ---- Google ----
	found("API key", "google_api_key", "https://maps.googleapis.com/maps/api/geocode/json?key=AIza" .. fake(1061, 35, URLSAFE)),
	clean("API key too short", "AIza" .. fake(1062, 30, URLSAFE)),
	found("OAuth client secret", "google_oauth_client_secret", "{\"installed\":{\"client_secret\":\"GOCSPX-" .. fake(1063, 28, URLSAFE) .. "\"}}", { headers = JSON }),
	clean("OAuth client secret placeholder", "GOCSPX-<client-secret>"),
	found("OAuth access token", "google_oauth_access_token", "ya29.a0" .. fake(1064, 180, URLSAFE)),
	clean("OAuth access token too short", "ya29.short"),
	found("service account key file (raw, \\n escapes)", { "gcp_service_account_key", "private_key" },
		"{\n  \"type\": \"service_account\",\n  \"project_id\": \"acme-prod\",\n  \"private_key_id\": \"" .. fake(1065, 40, HEX)
			.. "\",\n  \"private_key\": \"" .. pem("PRIVATE KEY", 1066, 8):gsub("\n", "\\n") .. "\\n\",\n"
			.. "  \"client_email\": \"ci@acme-prod.iam.gserviceaccount.com\"\n}\n"),
	found("service account key file sent as JSON", { "gcp_service_account_key", "private_key" },
		"{\"type\": \"service_account\", \"private_key\": \"" .. pem("PRIVATE KEY", 1067, 8):gsub("\n", "\\n") .. "\\n\"}",
		{ headers = JSON }),
	clean("service account JSON without the key",
		"{\"type\": \"service_account\", \"project_id\": \"acme-prod\", \"client_email\": \"ci@acme-prod.iam.gserviceaccount.com\"}",
		{ headers = JSON }),

	-- ---- Azure ----
	found("storage connection string", "azure_storage_account_key",
		"DefaultEndpointsProtocol=https;AccountName=acmeprod;AccountKey=" .. fake(1071, 86, B64) .. "==;EndpointSuffix=core.windows.net"),
	clean("storage emulator placeholder", "DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey=<account-key>"),
	found("SAS URL", "azure_sas_token",
		"https://acme.blob.core.windows.net/c/b?sp=r&st=2024-01-01T00:00:00Z&se=2024-12-31T00:00:00Z&spr=https&sv=2022-11-02&sr=b&sig="
			.. fake(1072, 40) .. "%2F" .. fake(1073, 3) .. "%3D"),
	clean("sig= that is not a SAS", "https://cdn.acme.io/img.png?sig=" .. fake(1074, 43) .. "&w=200"),
	found("service bus connection string", "azure_shared_access_key",
		"Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=" .. fake(1075, 43, B64) .. "="),
	clean("service bus placeholder", "Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=<key>"),

	-- ---- Twilio ----
	found("twilio API key", "twilio_api_key", "TWILIO_API_KEY=SK" .. fake(1081, 32, HEX)),
	clean("SK + hex with no twilio word", "build SK" .. fake(1082, 32, HEX)),
	found("twilio account SID", "twilio_account_sid", "https://api.twilio.com/2010-04-01/Accounts/AC" .. fake(1083, 32, HEX) .. "/Messages.json"),
	clean("twilio SID in upper case", "twilio AC" .. fake(1084, 32, UPPER_ALNUM)),
	found("twilio auth token", "twilio_auth_token", "# twilio\nauth_token = '" .. fake(1085, 32, HEX) .. "'"),
	clean("twilio auth token placeholder", "TWILIO_AUTH_TOKEN=your_auth_token"),

	-- ---- Messaging, registries, CI/CD ----
	found("sendgrid key", "sendgrid_api_key", "SG." .. fake(1091, 22, URLSAFE) .. "." .. fake(1092, 43, URLSAFE)),
	clean("SG. host name", "smtp relay SG.example.com"),
	found("mailgun key", "mailgun_api_key", "api:key-" .. fake(1093, 32, HEX)),
	clean("key-value prose", "a key-value store keyed by monkey-" .. fake(1094, 32, HEX)),
	found("npm token in .npmrc", "npm_token", "//registry.npmjs.org/:_authToken=npm_" .. fake(1095, 36)),
	clean("npm_config variable", "npm_config_registry=https://registry.npmjs.org/"),
	found("pypi token", "pypi_token", "[pypi]\nusername = __token__\npassword = pypi-AgEIcHlwaS5vcmc" .. fake(1096, 140, URLSAFE)),
	clean("pypi token prefix only", "pypi-AgEIcHlwaS5vcmc" .. fake(1097, 20, URLSAFE)),
	found("docker hub PAT", "dockerhub_pat", "docker login -u acme -p dckr_pat_" .. fake(1098, 27, URLSAFE)),
	clean("docker hub PAT too short", "dckr_pat_" .. fake(1099, 12)),
	found("heroku API key", "heroku_api_key", "HEROKU_API_KEY=" .. uuid(1100)),
	clean("a request id UUID", "x-request-id: " .. uuid(1105)),
	clean("heroku app id is a UUID but no secret", "HEROKU_APP_ID=" .. uuid(1216)),
	found("digitalocean token", "digitalocean_token", "doctl auth init -t dop_v1_" .. fake(1110, 64, HEX)),
	clean("digitalocean token v2 prefix", "dop_v2_" .. fake(1111, 64, HEX)),
	found("shopify token", "shopify_token", "X-Shopify-Access-Token: shpat_" .. fake(1112, 32, HEX)),
	clean("shopify token not hex", "shpat_" .. fake(1113, 32, LETTERS)),
	found("atlassian token", "atlassian_api_token", "ATATT3xFfGF0" .. fake(1114, 180, URLSAFE)),
	clean("atlassian token too short", "ATATT3" .. fake(1115, 60, URLSAFE)),
	found("discord bot token", "discord_bot_token",
		"DISCORD_TOKEN=MTA" .. fake(1116, 23, URLSAFE) .. "." .. fake(1117, 6, URLSAFE) .. "." .. fake(1118, 38, URLSAFE)),
	clean("discord-shaped token with no discord word",
		"MTA" .. fake(1119, 23, URLSAFE) .. "." .. fake(1120, 6, URLSAFE) .. "." .. fake(1121, 38, URLSAFE)),
	found("discord webhook", "discord_webhook_url", "https://discord.com/api/webhooks/" .. fake(1122, 19, DIGITS) .. "/" .. fake(1123, 68, URLSAFE)),
	clean("discord channel URL", "https://discord.com/channels/" .. fake(1124, 19, DIGITS) .. "/" .. fake(1125, 19, DIGITS)),
	found("telegram bot token in a URL", "telegram_bot_token",
		"https://api.telegram.org/bot" .. fake(1126, 9, DIGITS) .. ":AA" .. fake(1127, 33, URLSAFE) .. "/sendMessage"),
	clean("digits:chars with no bot word", "time " .. fake(1128, 10, DIGITS) .. ":AA" .. fake(1129, 33, URLSAFE)),

	-- ---- AI platforms ----
	found("openai project key", "openai_api_key", "OPENAI_API_KEY=sk-proj-" .. fake(1131, 74, URLSAFE) .. "T3BlbkFJ" .. fake(1132, 74, URLSAFE)),
	clean("openai-like key without the marker", "sk-" .. fake(1133, 48)),
	found("anthropic key", "anthropic_api_key", "x-api-key: sk-ant-api03-" .. fake(1134, 93, URLSAFE) .. "AA"),
	clean("anthropic key too short", "sk-ant-api03-" .. fake(1135, 30, URLSAFE)),
	found("hugging face token", "huggingface_token", "huggingface-cli login --token hf_" .. fake(1136, 34, LETTERS)),
	clean("hf_ identifiers", "from huggingface_hub import hf_hub_download; hf_transformerslibraryconfiguration1"),
	found("databricks token", "databricks_token", "DATABRICKS_TOKEN=dapi" .. fake(1137, 32, HEX)),
	clean("dapi too short", "dapi" .. fake(1138, 20, HEX)),

	-- ---- Observability ----
	found("datadog API key", "datadog_api_key", "DD_API_KEY=" .. fake(1141, 32, HEX)),
	clean("datadog placeholder and a trace id", "DD_API_KEY=<your-api-key> datadog_site: datadoghq.eu datadog.trace_id: " .. fake(1144, 32, HEX)),
	found("new relic user key", "newrelic_api_key", "NEW_RELIC_API_KEY=NRAK-" .. fake(1142, 27, UPPER_ALNUM)),
	clean("new relic key too short", "NRAK-" .. fake(1143, 20, UPPER_ALNUM)),

	-- ---- Payments ----
	found("square access token", "square_access_token", "SQUARE_ACCESS_TOKEN=EAAA" .. fake(1151, 60, URLSAFE)),
	clean("square token too short", "EAAA" .. fake(1152, 30, URLSAFE)),
	found("square oauth secret", "square_oauth_secret", "sq0csp-" .. fake(1153, 43, URLSAFE)),
	clean("square oauth secret too short", "sq0csp-" .. fake(1154, 20, URLSAFE)),
	found("braintree production token", "braintree_access_token",
		"access_token$production$" .. fake(1155, 16, LOWER_ALNUM) .. "$" .. fake(1156, 32, HEX)),
	clean("braintree sandbox token", "access_token$sandbox$" .. fake(1157, 16, LOWER_ALNUM) .. "$" .. fake(1158, 32, HEX)),

	-- ---- Identity, infrastructure ----
	found("okta token after SSWS", "okta_api_token", "Authorization: SSWS 00" .. fake(1161, 40, URLSAFE)),
	clean("okta zeros", "okta id 000000000000000000000000000000000000000000"),
	found("vault token", "vault_token", "X-Vault-Token: hvs." .. fake(1162, 90, URLSAFE)),
	found("vault batch token of 290 characters", "vault_token", "hvb." .. fake(1167, 290, URLSAFE)),
	clean("hvs host name", "https://hvs.acme.io/path"),
	found("terraform cloud token", "terraform_cloud_token", fake(1163, 14) .. ".atlasv1." .. fake(1164, 67, URLSAFE)),
	clean("atlasv2 is not a token", fake(1165, 14) .. ".atlasv2." .. fake(1166, 67, URLSAFE)),

	-- ---- Keys ----
	found("RSA private key", "private_key", "here it is:\n" .. pem("RSA PRIVATE KEY", 1170, 20) .. "\nthanks"),
	found("EC private key", "private_key", pem("EC PRIVATE KEY", 1171, 3)),
	found("PGP private key block", "private_key", pem("PGP PRIVATE KEY BLOCK", 1172, 60)),
	found("encrypted PKCS#8 key", "private_key", pem("ENCRYPTED PRIVATE KEY", 1173, 16)),
	found("truncated private key (no END line)", "private_key", pem("RSA PRIVATE KEY", 1174, 12):sub(1, 500)),
	clean("public key and certificate", pem("PUBLIC KEY", 1175, 6) .. "\n" .. pem("CERTIFICATE", 1176, 12)),
	clean("private key placeholder", "-----BEGIN RSA PRIVATE KEY-----\n...your key here...\n-----END RSA PRIVATE KEY-----"),
	found("putty key", "putty_private_key",
		"PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: ci\nPublic-Lines: 2\n" .. fake(1177, 64, B64) .. "\n"
			.. fake(1178, 16, B64) .. "\nPrivate-Lines: 1\n" .. fake(1179, 44, B64) .. "\nPrivate-MAC: " .. fake(1180, 64, HEX) .. "\n"),
	clean("putty header only", "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n"),
	found("JWT", "jwt", "{\"id_token\":\"eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2FjbWUuaW8ifQ." .. fake(1181, 342, URLSAFE) .. "\"}",
		{ headers = JSON }),
	found("long JWT (2 KB payload)", "jwt", "token=eyJhbGciOiJFUzI1NiJ9.eyJ" .. fake(1182, 2000, URLSAFE) .. "." .. fake(1183, 86, URLSAFE)),
	clean("unsigned JWT and a lone header", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjM0NTY3ODkwIn0. eyJhbGciOiJIUzI1NiJ9"),
	found("mapbox secret token", "mapbox_secret_token", "sk.eyJ1IjoiYWNtZSIsImEiOiJ" .. fake(1184, 20) .. "." .. fake(1185, 22, URLSAFE)),
	clean("mapbox public token", "pk.eyJ1IjoiYWNtZSIsImEiOiJ" .. fake(1186, 20) .. "." .. fake(1187, 22, URLSAFE)),

	-- ---- Passwords and generic secrets ----
	found("password in an env file", "generic_secret", "DB_HOST=db\nDB_PASSWORD=" .. fake(1191, 20) .. "\n"),
	found("client_secret in JSON", "generic_secret", "{\"client_secret\": \"" .. fake(1192, 32) .. "\"}", { headers = JSON }),
	found("password in a login form", "generic_secret", "username=jane&password=" .. urlencode("s3cr3tP@ssw0rd!2024"), { headers = FORM }),
	clean("placeholders and references",
		"password = \"changeme123\"\napi_key: ${API_KEY}\nsecret = \"<your-secret-here>\"\ntoken: xxxxxxxxxxxxxxxxxxxxxx\n"
			.. "password = os.environ['DB_PASSWORD']\nsecret_key = settings.SECRET_KEY2\n"),
	clean("CSRF form field and pagination token",
		"csrfmiddlewaretoken=" .. fake(1193, 64) .. "&q=shoes", { headers = FORM }),
	clean("pagination token in JSON", "{\"nextPageToken\": \"" .. fake(1194, 40) .. "\", \"max_tokens\": 4096}", { headers = JSON }),
	clean("short human password", "password = 'Tr0ub4dor&3'"),
	found("600-character quoted secret (past the default 256-byte window)", "generic_secret",
		"{\"client_secret\": \"" .. fake(1215, 600) .. "\"}", { headers = JSON }),
	found("credentials in a proxy URL", "url_basic_auth", "HTTP_PROXY=http://jsmith:Winter2024!@proxy.corp.acme.com:3128"),
	clean("placeholder credentials in a URL", "https://user:password@host.acme.io/ and https://admin:${ADMIN_PASSWORD}@acme.io"),
	found("postgres URL", "db_connection_string", "DATABASE_URL=postgres://app:" .. fake(1195, 20) .. "@db.internal.acme.io:5432/prod"),
	found("mongodb+srv URL in JSON", "db_connection_string",
		"{\"uri\":\"mongodb+srv:\\/\\/svc:" .. fake(1196, 16) .. "@cluster0.ab1cd.mongodb.net\\/app\"}", { headers = JSON }),
	found("ADO.NET connection string", "db_connection_string",
		"Server=tcp:acme.database.windows.net,1433;Initial Catalog=prod;User ID=app;Password=" .. fake(1197, 18) .. ";"),
	clean("docker-compose default database URLs",
		"postgres://postgres:postgres@localhost:5432/postgres\nmysql://root:${MYSQL_ROOT_PASSWORD}@db:3306/app\nmongodb://localhost:27017/app"),
	found("pasted curl with a bearer token", "authorization_header",
		"curl -H \"Authorization: Bearer " .. fake(1198, 40, URLSAFE) .. "\" https://api.acme.io/v1/me"),
	clean("authorization placeholders", "Authorization: Bearer <token>\nAuthorization: Bearer $TOKEN\nAuthorization: Bearer YOUR_TOKEN_HERE"),

	-- ---- how secrets travel ----
	found("form body with every byte %-encoded", "github_pat", "note=" .. urlencode("my token is ghp_" .. fake(1201, 36)),
		{ headers = FORM }),
	found("+json content type decodes \\u escapes", "stripe_live_secret_key",
		"{\"k\":\"\\u0073k_live_" .. fake(1202, 24) .. "\"}", { headers = { ["Content-Type"] = "application/vnd.api+json; charset=utf-8" } }),
	found("gzip JSON body", "slack_bot_token",
		"{\"token\":\"xoxb-" .. fake(1203, 12, DIGITS) .. "-" .. fake(1204, 12, DIGITS) .. "-" .. fake(1205, 24) .. "\"}",
		{ headers = JSON, encoding = "gzip" }),
	found("multipart upload of an OpenSSH key", "private_key",
		"--XYZ\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\nmy key\r\n"
			.. "--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"id_ed25519\"\r\nContent-Type: application/octet-stream\r\n\r\n"
			.. pem("OPENSSH PRIVATE KEY", 1206, 6) .. "\n\r\n--XYZ--\r\n",
		{ headers = { ["Content-Type"] = "multipart/form-data; boundary=XYZ" } }),
	found("multipart upload of a key after 100 KB", "private_key",
		"--XYZ\r\nContent-Disposition: form-data; name=\"log\"; filename=\"debug.log\"\r\n\r\n" .. FILLER .. "\r\n"
			.. "--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"key.pem\"\r\n\r\n"
			.. pem("RSA PRIVATE KEY", 1207, 25) .. "\r\n--XYZ--\r\n",
		{ headers = { ["Content-Type"] = "multipart/form-data; boundary=XYZ" } }),
	clean("multipart upload of a certificate", "--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"ca.pem\"\r\n\r\n"
		.. pem("CERTIFICATE", 1208, 10) .. "\r\n--XYZ--\r\n", { headers = { ["Content-Type"] = "multipart/form-data; boundary=XYZ" } }),
	found("AWS key after 100 KB of text", "aws_access_key_id", FILLER .. "\nAWS_ACCESS_KEY_ID=AKIA" .. fake(1209, 16, B32) .. "\n"),
	-- (random words: 100 KB of one repeated sentence gzips past the engine's 200:1 bomb ratio and is refused unread)
	found("gzip body, secret after 100 KB", "stripe_live_secret_key", fake(1214, 110000, "abcdefghijklmnopqrstuvwxyz     \n")
		.. "\nsk_live_" .. fake(1210, 24), { encoding = "gzip" }),
	found("5000 keyword hits before the token (prefilter saturates)", "github_pat",
		string.rep("ghp_x ", 5000) .. "ghp_" .. fake(1211, 36)),
	clean("5000 keyword hits and no token", string.rep("ghp_x token ", 5000)),
	clean("large clean body", FILLER),
	{
		name = "two secrets in one body, reason names both",
		request = { body = "sk_live_" .. fake(1212, 24) .. " and npm_" .. fake(1213, 36) },
		expect = { verdict = "block", detectors = { "npm_token", "stripe_live_secret_key" },
			reason = "found npm_token,stripe_live_secret_key" },
	},
}

return cases
