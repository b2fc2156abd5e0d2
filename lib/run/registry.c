/* registry.c - every task the runner knows (task.h): the config's `task` value to its ops. A new
 * task adds its header and one line to the table. */
#include "task.h"

#include <string.h>

#include "task_lft.h"
#include "task_mwn.h"
#include "task_rotation.h"
#include "task_supervised.h"
#include "task_toy1d.h"

static const struct task_ops *const tasks[] = {
    &task_supervised, &task_toy1d, &task_rotation, &task_mwn, &task_lft,
};
#define NTASKS (sizeof tasks / sizeof tasks[0])

const struct task_ops *task_find(const char *name)
{
    for (size_t i = 0; i < NTASKS; i++) {
        if (strcmp(tasks[i]->name, name) == 0) return tasks[i];
    }
    return NULL;
}

size_t task_count(void)
{
    return NTASKS;
}

const struct task_ops *task_at(size_t i)
{
    EG_ASSERT(i < NTASKS);
    return tasks[i];
}
