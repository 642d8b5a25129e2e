-- wrk script: POST a chat completion; STREAM=1 asks for a stream, TG_KEY adds the key,
-- MODEL sets the model (default gpt-4o-mini). DIALECT=anthropic posts an Anthropic
-- Messages request instead (the URL must then be /v1/messages).
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
local anthropic = os.getenv("DIALECT") == "anthropic"
local key = os.getenv("TG_KEY")
if key and key ~= "" then
  if anthropic then
    wrk.headers["x-api-key"] = key
    wrk.headers["anthropic-version"] = "2023-06-01"
  else
    wrk.headers["authorization"] = "Bearer " .. key
  end
end
local stream = os.getenv("STREAM") == "1"
local model = os.getenv("MODEL") or "gpt-4o-mini"
local extra = anthropic and '"max_tokens":256,' or ''
wrk.body = '{"model":"' .. model .. '",' .. extra .. '"messages":[{"role":"user","content":"Say hello in one short sentence, please."}],"stream":' .. (stream and "true" or "false") .. '}'
