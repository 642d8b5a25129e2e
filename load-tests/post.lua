-- wrk script: POST a chat completion; STREAM=1 asks for a stream, TG_KEY adds the key,
-- MODEL sets the model (default gpt-4o-mini).
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
local key = os.getenv("TG_KEY")
if key and key ~= "" then
  wrk.headers["authorization"] = "Bearer " .. key
end
local stream = os.getenv("STREAM") == "1"
local model = os.getenv("MODEL") or "gpt-4o-mini"
wrk.body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"Say hello in one short sentence, please."}],"stream":' .. (stream and "true" or "false") .. '}'
