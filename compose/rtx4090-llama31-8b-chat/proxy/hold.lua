-- HAProxy Lua: requests for an alias without a fallback wait for its engine.
-- Generated from profiles/rtx4090-llama31-8b-chat.yaml by `appliance render`.
-- Edit the profile, not this file: it is rewritten on every render, up and switch.
-- appliance_hold(ms): while the `local` server of this backend is not UP (its engine stopped for a switch, loading,
-- restarting) sleep in 250 ms steps, up to ms; then let HAProxy route the request as usual (to the engine, or 503
-- if it never came). A backend with a fallback server does not use it: the fallback serves meanwhile.
core.register_action("appliance_hold", { "http-req" }, function(txn, hold_ms)
    local be = core.backends[txn.f:be_name()]
    local srv = be and be.servers["local"]
    if srv == nil then return end
    local limit = tonumber(hold_ms) or 0
    local waited = 0
    while waited < limit do
        local status = srv:get_stats()["status"] or ""
        if string.sub(status, 1, 2) == "UP" then break end
        core.msleep(250)
        waited = waited + 250
    end
    if waited > 0 then txn:set_var("txn.held_ms", waited) end
end, 1)
