/*
 * A stand-in for NVIDIA's libnvidia-ml.so.1, for wattwise's tests: loaded by pynvml in place of the driver's
 * library (LD_LIBRARY_PATH), so the real PynvmlBackend runs against it.
 *
 * Two GPUs:
 *   0  "NVIDIA H100 80GB HBM3": a total-energy counter that steps every 100 ms (300 W: 30,000 mJ a step),
 *      averaged power 300 W, instantaneous power 310 W (newer driver only), a power limit of 700 W, and the
 *      calling process listed as its compute process (the caller is the measured process tree's root).
 *   1  "NVIDIA GeForce RTX 2080": neither energy nor power (NOT_SUPPORTED), no processes.
 *
 * Built three times by the tests: as is (a current driver); with -DOLD_DRIVER (a driver before R510: no _v3
 * process calls, no nvmlInitWithFlags, no instantaneous power field), which is what crashed wattwise before; and
 * with -DOLD_DRIVER -DR450 (before R470: no _v2 process calls either, only the first version's struct).
 *
 * With STANDIN_NVML_GARBAGE_PID set, GPU 0 also lists a process with pid 4294967295, as some R535 builds do.
 *
 * Every counter value GPU 0 returns is appended, one per line, to the file named by STANDIN_NVML_LOG, so a test
 * can check the run recorded exactly the counter's delta.
 *
 * Written for wattwise from the public NVML API reference (function names, types, return codes); no code of
 * NVIDIA's or anyone else's is copied.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef int nvmlReturn_t;
typedef struct { int index; } *nvmlDevice_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_NOT_FOUND 6
#define NVML_FI_DEV_POWER_INSTANT 186

static struct { int index; } devices[2] = {{0}, {1}};
static int initialised = 0;
static struct timespec started;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_v2_t;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
} nvmlProcessInfo_v1_t;

typedef union {
    double dVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    signed long long sllVal;
    signed int siVal;
    unsigned short usVal;
} nvmlValue_t;

typedef struct {
    unsigned int fieldId;
    unsigned int scopeId;
    long long timestamp;
    long long latencyUsec;
    int valueType;
    nvmlReturn_t nvmlReturn;
    nvmlValue_t value;
} nvmlFieldValue_t;

typedef struct {
    unsigned int pid;
    unsigned long long timeStamp;
    unsigned int smUtil;
    unsigned int memUtil;
    unsigned int encUtil;
    unsigned int decUtil;
} nvmlProcessUtilizationSample_t;

static double elapsed_s(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - started.tv_sec) + (double)(now.tv_nsec - started.tv_nsec) / 1e9;
}

static int check(nvmlDevice_t device) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (device != (nvmlDevice_t)&devices[0] && device != (nvmlDevice_t)&devices[1]) return NVML_ERROR_INVALID_ARGUMENT;
    return NVML_SUCCESS;
}

static nvmlReturn_t init(void) {
    clock_gettime(CLOCK_MONOTONIC, &started);
    initialised = 1;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void) { return init(); }
#ifndef OLD_DRIVER
nvmlReturn_t nvmlInitWithFlags(unsigned int flags) { (void)flags; return init(); }
#endif
nvmlReturn_t nvmlShutdown(void) { initialised = 0; return NVML_SUCCESS; }

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
#if defined(R450)
    snprintf(version, length, "450.248.02");
#elif defined(OLD_DRIVER)
    snprintf(version, length, "470.199.02");
#else
    snprintf(version, length, "550.54.15");
#endif
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
    snprintf(version, length, "12.0");
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    *count = 2;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    if (index > 1) return NVML_ERROR_INVALID_ARGUMENT;
    *device = (nvmlDevice_t)&devices[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device) {
    if (!initialised) return NVML_ERROR_UNINITIALIZED;
    for (int i = 0; i < 2; i++) {
        char mine[64];
        snprintf(mine, sizeof mine, "GPU-5a5a5a5a-0000-4000-8000-00000000000%d", i);
        if (strcmp(uuid, mine) == 0) {
            *device = (nvmlDevice_t)&devices[i];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    int rc = check(device);
    if (rc) return rc;
    snprintf(name, length, "%s", device->index == 0 ? "NVIDIA H100 80GB HBM3" : "NVIDIA GeForce RTX 2080");
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    int rc = check(device);
    if (rc) return rc;
    snprintf(uuid, length, "GPU-5a5a5a5a-0000-4000-8000-00000000000%d", device->index);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t device, unsigned long long *energy) {
    int rc = check(device);
    if (rc) return rc;
    if (device->index != 0) return NVML_ERROR_NOT_SUPPORTED;
    unsigned long long steps = (unsigned long long)(elapsed_s() * 10.0);
    *energy = 1000000000ULL + steps * 30000ULL;
    const char *log = getenv("STANDIN_NVML_LOG");
    if (log != NULL) {
        FILE *f = fopen(log, "a");
        if (f != NULL) {
            fprintf(f, "%llu\n", *energy);
            fclose(f);
        }
    }
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
    int rc = check(device);
    if (rc) return rc;
    if (device->index != 0) return NVML_ERROR_NOT_SUPPORTED;
    *power = 300000;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit) {
    int rc = check(device);
    if (rc) return rc;
    *limit = device->index == 0 ? 700000 : 250000;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t device, int count, nvmlFieldValue_t *values) {
    int rc = check(device);
    if (rc) return rc;
    for (int i = 0; i < count; i++) {
        values[i].nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
#ifndef OLD_DRIVER
        if (values[i].fieldId == NVML_FI_DEV_POWER_INSTANT && device->index == 0) {
            values[i].nvmlReturn = NVML_SUCCESS;
            values[i].valueType = 1;
            values[i].value.uiVal = 310000;
        }
#endif
    }
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *current, unsigned int *pending) {
    int rc = check(device);
    if (rc) return rc;
    if (device->index != 0) return NVML_ERROR_NOT_SUPPORTED;
    *current = 0;
    *pending = 0;
    return NVML_SUCCESS;
}

/* The caller's pid as the host numbers it, as the driver reports pids: NSpid's first entry in /proc/self/status
 * (the same as getpid() outside a PID namespace, and where /proc is the container's own the best this can do). */
static unsigned int host_pid(void) {
    unsigned int pid = (unsigned int)getpid();
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) return pid;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "NSpid:", 6) == 0) {
            pid = (unsigned int)strtoul(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return pid;
}

/* One compute process on GPU 0: the caller. Fills a table of `size`-byte entries with the pid first. */
static nvmlReturn_t processes(nvmlDevice_t device, unsigned int *count, void *infos, size_t size, int compute) {
    int rc = check(device);
    if (rc) return rc;
    unsigned int n = (device->index == 0 && compute) ? 1 : 0;
    if (n == 1 && getenv("STANDIN_NVML_GARBAGE_PID") != NULL) n = 2;
    if (infos == NULL || *count < n) {
        unsigned int wanted = n;
        *count = wanted;
        return n == 0 ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE;
    }
    memset(infos, 0, size * (*count));
    if (n >= 1) *(unsigned int *)infos = host_pid();
    if (n == 2) *(unsigned int *)((char *)infos + size) = 4294967295u;
    *count = n;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t d, unsigned int *c, nvmlProcessInfo_v1_t *p) {
    return processes(d, c, p, sizeof(nvmlProcessInfo_v1_t), 1);
}
nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses(nvmlDevice_t d, unsigned int *c, nvmlProcessInfo_v1_t *p) {
    return processes(d, c, p, sizeof(nvmlProcessInfo_v1_t), 0);
}
#ifndef R450
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t d, unsigned int *c, nvmlProcessInfo_v2_t *p) {
    return processes(d, c, p, sizeof(nvmlProcessInfo_v2_t), 1);
}
nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v2(nvmlDevice_t d, unsigned int *c, nvmlProcessInfo_v2_t *p) {
    return processes(d, c, p, sizeof(nvmlProcessInfo_v2_t), 0);
}
#endif
#ifndef OLD_DRIVER
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *c, nvmlProcessInfo_v2_t *p) {
    return processes(d, c, p, sizeof(nvmlProcessInfo_v2_t), 1);
}
nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t d, unsigned int *c, nvmlProcessInfo_v2_t *p) {
    return processes(d, c, p, sizeof(nvmlProcessInfo_v2_t), 0);
}
#endif

nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device, nvmlProcessUtilizationSample_t *samples,
                                             unsigned int *count, unsigned long long lastSeen) {
    int rc = check(device);
    if (rc) return rc;
    (void)samples;
    (void)lastSeen;
    *count = 0;
    return NVML_ERROR_NOT_FOUND; /* no sample newer than lastSeen */
}
