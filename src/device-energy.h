/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>
#include <stdbool.h>

struct daemon;
struct device;

/* kWh counters for the devices that keep none of their own (batteries, shunts: charged and
 * discharged; inverters: output), integrated from each poll's power. They are readings like
 * the others, so every poll row carries them: a restart resumes from the last one on disk.
 * The API shows them as of the last commit, never ahead of the disk, so that a power cut can
 * never make one fall (Home Assistant would count a fall as a meter reset). */

/* Whether the device's family gets counters. */
bool device_energy_kept(const struct device *dev);
/* After its stored readings were put back: the counters go on from them. */
void device_energy_resume(struct device *dev);
/* After a poll's readings were decoded, before they are recorded: adds this poll's energy and
 * appends the counters to the readings. */
void device_energy_poll(const struct daemon *d, struct device *dev);
/* Every recorded poll is on the disk: the counters shown catch up. */
void device_energy_committed(struct daemon *d);
/* The counter `key` as shown, where it differs from the live reading; false otherwise. */
bool device_energy_shown(const struct daemon *d, const struct device *dev, const char *key, double *value);
/* Puts the counters as shown into the API's readings object of the device. */
void device_energy_json(const struct daemon *d, const struct device *dev, json_t *readings);
