-- Argo CD health check for syncjob.dev/SyncJob (resource.customizations.health.syncjob.dev_SyncJob).
-- Reads only what the operator writes: status.observedGeneration, the Ready / Synced / Terminal
-- conditions and status.remote.state. Written for Argo CD's Lua 5.1 VM (gopher-lua): base,
-- string and table functions only. Cases: argocd/health_test.yaml; docs: docs/argocd.md.
-- Argo CD answers "Progressing: Pending deletion" for an object being deleted without running
-- this script, so it has nothing to say about deletion.
--
--   no status yet / generation not observed yet          Progressing
--   Terminal=True (retrying cannot fix it)               Degraded
--   remote job failed (Ready reason RemoteError, ERROR)  Degraded
--   paused (annotation reconcile.syncjob.dev/paused)               Suspended
--   last reconcile failed, will retry (Synced=False)     Progressing
--   Ready=True                                           Healthy
--   anything else (creating, remote absent, ...)         Progressing
local hs = {}

local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

-- The condition's message, or the fallback when there is none.
local function message(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

-- "Reason: message" of a condition, or the fallback.
local function describe(c, fallback)
  if c == nil or c.reason == nil or c.reason == "" then
    return message(c, fallback)
  end
  return c.reason .. ": " .. message(c, "")
end

local status = obj.status

if status == nil or status.conditions == nil or #status.conditions == 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the SyncJob"
  return hs
end

-- A status written for an older generation says nothing about the current spec: a Terminal
-- error from before a fix must not keep the application Degraded.
local generation = obj.metadata and obj.metadata.generation
local current = generation == nil
  or (status.observedGeneration ~= nil and status.observedGeneration >= generation)

local ready = condition("Ready")
local synced = condition("Synced")
local terminal = condition("Terminal")
local remoteState = status.remote and status.remote.state

if current and terminal ~= nil and terminal.status == "True" then
  hs.status = "Degraded"
  hs.message = "Terminal: " .. message(synced, describe(terminal, "terminal error"))
  return hs
end

if current and ((ready ~= nil and ready.reason == "RemoteError") or remoteState == "ERROR") then
  hs.status = "Degraded"
  hs.message = "Remote job failed: " .. message(ready, "remote state ERROR")
  return hs
end

if not current then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

if synced ~= nil and synced.status == "False" and synced.reason == "ReconcilePaused" then
  hs.status = "Suspended"
  hs.message = message(synced, "paused")
  return hs
end

if synced ~= nil and synced.status == "False" then
  hs.status = "Progressing"
  hs.message = "Retrying: " .. message(synced, "the last reconcile failed")
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message(ready, "Ready")
  return hs
end

hs.status = "Progressing"
hs.message = describe(ready, "Waiting for the remote job")
return hs
