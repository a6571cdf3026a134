from atasker import TASK_HIGH, FunctionCollection, TaskCollection

startup = FunctionCollection()


@startup(priority=TASK_HIGH)
def open_database():
    return "database ready"


@startup
def warm_cache():
    return "cache warm"


print(startup.run())   # high priority first

checks = TaskCollection()   # each function runs as a thread task
checks.append(lambda: "disk ok")
results, all_ok = checks.execute()
print(all_ok)
