from atasker import background_task, task_supervisor, wait_completed, TASK_HIGH


@background_task
def fetch(url):
    return f"<html of {url}>"


@background_task(priority=TASK_HIGH, callback=print)
def urgent(x):
    return x * 2


ids = [fetch(f"https://example.com/{n}") for n in range(3)]
print(wait_completed(ids))          # results, in the order of ids
urgent_id = urgent(21)              # its callback prints 42
task_supervisor.stop()              # waits for everything accepted
info = task_supervisor.get_task_info(urgent_id)
print(info.name, info.priority, info.result)    # urgent 50 42
